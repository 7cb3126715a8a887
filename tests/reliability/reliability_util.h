// Shared helpers of the reliability tests (crash, load, multi-process): a
// devstream server that can be SIGKILLed (BackgroundProcess underneath), an
// MCP Streamable-HTTP client, latency percentiles per operation kind, the
// server's RSS and open descriptors from /proc, and environment knobs.
#pragma once

#include <dirent.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace ds::rtest {

using namespace ds::itest;  // NOLINT: the harness is the tests' vocabulary
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

// An integer from the environment, else `def` (also when malformed or < 0).
inline long EnvLong(const char* name, long def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (end && *end == '\0' && n >= 0) ? n : def;
}

// Removes a test's temporary directory when it goes out of scope, unless
// `keep` was set (to leave the evidence of a failure behind).
struct DirCleanup {
  std::string dir;
  bool keep = false;
  ~DirCleanup() {
    std::error_code ec;
    if (!keep) std::filesystem::remove_all(dir, ec);
  }
};

// What a client should never see from a healthy server on a shared database.
inline bool LooksLikeLockTrouble(const std::string& text) {
  return text.find("database is locked") != std::string::npos ||
         text.find("database busy") != std::string::npos ||
         text.find("SQLITE_BUSY") != std::string::npos;
}

// The harness's Http(), waiting up to 30 s for the answer instead of 5: on a
// loaded 2-core machine (ASan, ctest -j) a slow answer is not a dropped one.
// Status 0 only when the connection failed or closed without a response head.
inline HttpResult Http(int port, const std::string& method, const std::string& target,
                       const std::string& body = "", const Headers& headers = {}) {
  return itest::Http(port, method, target, body, headers, /*json_content_type=*/true, 30000);
}

inline std::string Str(const std::string& s) {
  return json::serialize(json::value(s));
}

// The "id" member when it is a string (plans, phases, tasks, jobs, sessions).
inline std::string IdOf(const json::value& v) {
  if (!v.is_object() || !v.as_object().contains("id") || !v.at("id").is_string()) return "";
  return std::string(v.at("id").as_string());
}

// The "id" member when it is an integer (memories); 0 when not.
inline int64_t IntIdOf(const json::value& v) {
  if (!v.is_object() || !v.as_object().contains("id") || !v.at("id").is_int64()) return 0;
  return v.at("id").as_int64();
}

inline std::string StringField(const json::value& v, const char* name) {
  if (!v.is_object() || !v.as_object().contains(name) || !v.at(name).is_string()) return "";
  return std::string(v.at(name).as_string());
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds step = std::chrono::milliseconds(50)) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

inline double MillisSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// VmRSS of a process in KiB (-1 when unreadable).
inline long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Open file descriptors of a process (-1 when unreadable).
inline int FdCount(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// What each open descriptor of a process refers to (readlink of /proc/<pid>/fd/N;
// files by name, sockets and pipes by kind).
inline std::multiset<std::string> FdTargets(pid_t pid) {
  std::multiset<std::string> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char buf[512];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), buf, sizeof buf - 1);
    std::string target = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    // Sockets and pipes differ by inode only: count them by kind.
    if (target.rfind("socket:", 0) == 0) target = "socket";
    if (target.rfind("pipe:", 0) == 0) target = "pipe";
    if (target.rfind("anon_inode:", 0) == 0) target = target.substr(0, target.find('['));
    if (target.rfind('/', 0) == 0) target = target.substr(target.rfind('/') + 1);  // file name
    out.insert(target);
  }
  closedir(d);
  return out;
}

// "+a +b -c": what `after` holds beyond `before` and lacks from it.
inline std::string FdDiff(const std::multiset<std::string>& before,
                          const std::multiset<std::string>& after) {
  std::vector<std::string> added, removed;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(added));
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(),
                      std::back_inserter(removed));
  std::string out;
  for (const auto& a : added) out += " +" + a;
  for (const auto& r : removed) out += " -" + r;
  return out.empty() ? " (same)" : out;
}

// A `devstream serve --port 0` that can be killed with SIGKILL at any moment.
class Server {
 public:
  Server(std::string db, std::string log, std::vector<std::string> extra = {}, EnvVars env = {})
      : db_(std::move(db)), log_(std::move(log)), extra_(std::move(extra)), env_(std::move(env)) {}
  bool Start() {
    std::vector<std::string> args{"serve", "--port", "0", "--db", db_};
    args.insert(args.end(), extra_.begin(), extra_.end());
    proc_ = std::make_unique<BackgroundProcess>(args, log_, env_);
    port_ = 0;
    if (!proc_->Start("http://127.0.0.1:", 30000)) return false;
    // The ready line may be seen before its end: wait for the newline.
    for (int i = 0; i < 500 && port_ == 0; ++i) {
      std::string out = proc_->Stdout();
      auto pos = out.find("http://127.0.0.1:");
      if (pos != std::string::npos && out.find('\n', pos) != std::string::npos) {
        port_ = std::atoi(out.c_str() + pos + 17);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    return port_ > 0;
  }
  void Kill() {
    if (proc_) proc_->Kill();
  }
  int Stop(int timeout_ms = 15000) { return proc_ ? proc_->Stop(timeout_ms) : -1; }
  bool running() const { return proc_ && proc_->running(); }
  int port() const { return port_; }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  std::string Log() const { return ReadText(log_); }

 private:
  std::string db_, log_;
  std::vector<std::string> extra_;
  EnvVars env_;
  std::unique_ptr<BackgroundProcess> proc_;
  int port_ = 0;
};

// A Streamable-HTTP MCP client: initialize (keeping Mcp-Session-Id), then
// tools/call requests on that session.
class McpClient {
 public:
  explicit McpClient(int port) : port_(port) {}
  HttpResult Initialize() {
    Headers h{{"Accept", "application/json, text/event-stream"}};
    auto r = Http(port_, "POST", "/mcp",
                  R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{)"
                  R"("protocolVersion":"2025-06-18","capabilities":{},)"
                  R"("clientInfo":{"name":"reliability","version":"1"}}})",
                  h);
    sid_ = r.Header("mcp-session-id");
    if (r.status == 200 && !sid_.empty()) {
      Http(port_, "POST", "/mcp", R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
           SessionHeaders());
    }
    return r;
  }
  HttpResult Call(const std::string& tool, const json::object& args) {
    json::object msg{{"jsonrpc", "2.0"},
                     {"id", ++next_id_},
                     {"method", "tools/call"},
                     {"params", json::object{{"name", tool}, {"arguments", args}}}};
    return Http(port_, "POST", "/mcp", json::serialize(msg), SessionHeaders());
  }
  bool ready() const { return !sid_.empty(); }

 private:
  Headers SessionHeaders() const {
    return {{"Accept", "application/json, text/event-stream"},
            {"Mcp-Session-Id", sid_},
            {"MCP-Protocol-Version", "2025-06-18"}};
  }
  int port_;
  std::string sid_;
  int64_t next_id_ = 1;
};

// Whether a tools/call answer is a JSON-RPC success without isError.
inline bool McpToolOk(const HttpResult& r) {
  if (r.status != 200) return false;
  auto v = r.Json();
  if (!v.is_object() || !v.as_object().contains("result")) return false;
  const auto& res = v.at("result");
  return res.is_object() && res.as_object().contains("isError") && res.at("isError").is_bool() &&
         !res.at("isError").as_bool();
}

// Latencies (ms) per operation kind. Threads fill their own and merge.
class LatencyBook {
 public:
  void Add(const std::string& kind, double ms) { samples_[kind].push_back(ms); }
  void Merge(const LatencyBook& other) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, v] : other.samples_) {
      auto& mine = samples_[k];
      mine.insert(mine.end(), v.begin(), v.end());
    }
  }
  size_t Count(const std::string& kind) const {
    auto it = samples_.find(kind);
    return it == samples_.end() ? 0 : it->second.size();
  }
  size_t Total() const {
    size_t n = 0;
    for (const auto& [k, v] : samples_) n += v.size();
    return n;
  }
  // One line per kind: requests, p50/p95/p99/max in ms.
  void Report(std::ostream& out, const std::string& title, double seconds) const {
    out << "[ " << title << " ] " << Total() << " requests in " << std::fixed
        << std::setprecision(1) << seconds << " s ("
        << (seconds > 0 ? static_cast<double>(Total()) / seconds : 0) << " req/s)\n";
    for (auto [k, v] : samples_) {
      std::sort(v.begin(), v.end());
      auto pct = [&](double p) {
        if (v.empty()) return 0.0;
        size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
        return v[std::min(i, v.size() - 1)];
      };
      out << "    " << std::left << std::setw(10) << k << std::right << std::setw(7) << v.size()
          << " req  p50 " << std::setw(7) << pct(0.50) << " ms  p95 " << std::setw(7) << pct(0.95)
          << " ms  p99 " << std::setw(7) << pct(0.99) << " ms  max " << std::setw(7)
          << (v.empty() ? 0.0 : v.back()) << " ms\n";
    }
    out << std::flush;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<double>> samples_;
};

// The store's structural invariants; returns the problems found (empty: ok).
//   PRAGMA integrity_check is ok; foreign keys hold; the FTS5 index matches
//   semantic_memory (integrity-check with rank 1 compares it with the
//   content table); every memory has exactly one vector of the embedder's
//   model (the hash embedder writes it with the memory) and no vector is
//   orphaned.
inline std::vector<std::string> StoreInvariantProblems(const std::string& db_path) {
  std::vector<std::string> problems;
  TestDb db(db_path);
  if (!db.ok()) return {"cannot open " + db_path};
  std::string integrity = db.Scalar("PRAGMA integrity_check");
  if (integrity != "ok") problems.push_back("integrity_check: " + integrity);
  auto fk = db.Rows("PRAGMA foreign_key_check");
  if (!fk.empty()) problems.push_back("foreign_key_check: " + std::to_string(fk.size()) + " rows");
  std::string fts =
      db.Exec("INSERT INTO memory_fts(memory_fts, rank) VALUES('integrity-check', 1)");
  if (!fts.empty()) problems.push_back("memory_fts integrity-check: " + fts);
  // The rest in one read transaction: one snapshot, though the restarted
  // server and worker keep writing (two counts read apart could disagree).
  db.Exec("BEGIN");
  std::string unvectored = db.Scalar(
      "SELECT count(*) FROM semantic_memory m WHERE (SELECT count(*) FROM memory_vectors v"
      " WHERE v.memory_id = m.id) <> 1");
  if (unvectored != "0") problems.push_back(unvectored + " memories without exactly one vector");
  std::string orphans = db.Scalar(
      "SELECT count(*) FROM memory_vectors v WHERE NOT EXISTS"
      " (SELECT 1 FROM semantic_memory m WHERE m.id = v.memory_id)");
  if (orphans != "0") problems.push_back(orphans + " orphaned vectors");
  std::string fts_rows = db.Scalar("SELECT count(*) FROM memory_fts_docsize");
  std::string mem_rows = db.Scalar("SELECT count(*) FROM semantic_memory");
  db.Exec("COMMIT");
  if (fts_rows != mem_rows) {
    problems.push_back("memory_fts has " + fts_rows + " documents for " + mem_rows + " memories");
  }
  return problems;
}

}  // namespace ds::rtest
