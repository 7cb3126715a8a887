// Bad-input corpus against the real server (issue #9). A table of hostile
// requests is generated at test time: every operation of src/api/openapi.json
// that takes a body × families of broken bodies (truncated and malformed JSON,
// 100k-deep nesting, invalid UTF-8, NUL bytes, wrong top-level types, huge and
// negative numbers, wrong content type, oversized), every GET × hostile query
// strings, every route with a path parameter × hostile ids (SQL injection,
// traversal, NUL, overlong), backup jobs with traversal names, hostile JSON-RPC
// on /mcp, and raw-protocol abuse (bad request lines, Content-Length and
// Transfer-Encoding conflicts, obfuscated Transfer-Encoding, chunked garbage,
// oversized and too many headers, absurd lengths) with a pipelined "smuggled"
// request behind the framing attacks, plus slowloris connections cut off by
// the server's header and body timeouts. Each hostile request gets a 4xx
// problem+json (a JSON-RPC error on /mcp) or a closed connection, never a 5xx
// and never a second response; afterwards the stored data is byte-for-byte
// what it was and the server is alive and answers normally. Hostile strings
// that are valid input (SQL/FTS injection, traversal, odd Unicode) are stored
// in a project of their own and must read back verbatim without changing any
// other row.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace ds::itest {
namespace {

using Clock = std::chrono::steady_clock;

// What a hostile request may get back.
enum class Expect {
  kReject,           // a 4xx problem+json
  kRejectOrClose,    // a 4xx problem+json, or the connection closed without an answer
  kNoServerError,    // anything but a 5xx or a dropped connection (reads of odd queries)
  kJsonRpcError,     // HTTP 200/4xx carrying a JSON-RPC error (or a tool result with isError)
  kJsonRpcAccepted,  // a notification: 202 with no body, or a JSON-RPC error
};

struct Case {
  std::string name;
  std::string bytes;  // the whole request as sent
  Expect expect;
  bool body_family = false;  // a broken body sent to an operation that takes one
};

struct Reply {
  int status = 0;  // 0: closed without a response
  std::string content_type;
  std::string body;
  std::string extra;  // bytes after the first response (a second response: smuggling)
};

// A string literal with its NUL bytes.
template <size_t N>
std::string Bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Reply ParseReply(const std::string& raw) {
  Reply r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::atoi(raw.c_str() + 9);
  std::string head = Lower(raw.substr(0, end));
  size_t length = 0;
  if (size_t p = head.find("\r\ncontent-length:"); p != std::string::npos) {
    length = std::strtoul(head.c_str() + p + 17, nullptr, 10);
  }
  if (size_t p = head.find("\r\ncontent-type:"); p != std::string::npos) {
    size_t e = head.find("\r\n", p + 2);
    r.content_type = head.substr(p + 15, e == std::string::npos ? e : e - p - 15);
    while (!r.content_type.empty() && r.content_type.front() == ' ') r.content_type.erase(0, 1);
  }
  r.body = raw.substr(end + 4, length);
  if (end + 4 + length < raw.size()) r.extra = raw.substr(end + 4 + length);
  return r;
}

// A request as bytes (Connection: close, so the server ends the exchange).
std::string Request(const std::string& method, const std::string& target, const std::string& body,
                    const std::string& content_type = "application/json",
                    const std::vector<std::string>& headers = {}) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!content_type.empty()) r += "Content-Type: " + content_type + "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST" || method == "PATCH") {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

std::string ReadSource(const std::string& rel) {
  std::ifstream in(std::string(DEVSTREAM_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every row of every user table in a stable order, leaving out what reads
// legitimately change: a memory's access_count/last_accessed_at (searches
// count retrievals), a key's last_used_at, and the task engine's own tables.
std::string Snapshot(const std::string& db) {
  std::string out;
  auto tables = QueryDatabase(db,
                              "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                              "'sqlite_%' AND name NOT LIKE 'memory_fts_%' AND name NOT IN "
                              "('jobs','workers','job_schedules') ORDER BY name");
  static const std::set<std::string> kVolatile = {
      "semantic_memory.access_count", "semantic_memory.last_accessed_at", "api_keys.last_used_at"};
  for (const auto& t : tables) {
    std::string cols;
    int n = 0;
    for (const auto& c : QueryDatabase(db, "PRAGMA table_info(\"" + t[0] + "\")")) {
      if (kVolatile.count(t[0] + "." + c[1])) continue;
      cols += (cols.empty() ? "" : ",") + ("quote(\"" + c[1] + "\")");
      ++n;
    }
    std::string order;
    for (int i = 1; i <= n; ++i) order += (i > 1 ? "," : "") + std::to_string(i);
    out += "## " + t[0] + "\n";
    for (const auto& row :
         QueryDatabase(db, "SELECT " + cols + " FROM \"" + t[0] + "\" ORDER BY " + order)) {
      for (const auto& v : row) out += v + "|";
      out += "\n";
    }
  }
  return out;
}

std::multiset<std::string> Lines(const std::string& s) {
  std::multiset<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.insert(line);
  return out;
}

// The lines of `a` missing from `b` and of `b` missing from `a` (at most 20): a
// readable difference of two snapshots; empty when they are equal.
std::string Diff(const std::string& a, const std::string& b) {
  auto la = Lines(a), lb = Lines(b);
  std::string out;
  int shown = 0;
  for (const auto& l : la) {
    if (lb.count(l) < la.count(l) && shown++ < 20) out += "- " + l.substr(0, 300) + "\n";
  }
  for (const auto& l : lb) {
    if (la.count(l) < lb.count(l) && shown++ < 20) out += "+ " + l.substr(0, 300) + "\n";
  }
  return out;
}

std::string PercentEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---- the hostile payload families

std::vector<std::pair<std::string, std::string>> BodyFamilies() {
  std::vector<std::pair<std::string, std::string>> f;
  auto add = [&](const std::string& family, const std::vector<std::string>& bodies) {
    for (size_t i = 0; i < bodies.size(); ++i)
      f.emplace_back(family + "#" + std::to_string(i), bodies[i]);
  };
  add("truncated", {"{", "{\"", "{\"title\"", "{\"title\":", "{\"title\":\"x", "{\"title\":\"x\",",
                    "[", "[{\"a\":1}", "\"abc", "tru", "{\"a\":{\"b\":[1,2", "{\"title\":\"x\\"});
  add("malformed", {"}",
                    "{,}",
                    "{'title':'x'}",
                    "{\"title\":\"x\",}",
                    "{\"title\" \"x\"}",
                    "{title:\"x\"}",
                    "NaN",
                    "Infinity",
                    "{\"priority\":01}",
                    "{\"priority\":.5}",
                    "{\"priority\":+1}",
                    "{\"priority\":0x10}",
                    "/*c*/{}",
                    "{} {}",
                    "{}garbage",
                    "{\"a\":\"\\u12\"}",
                    "{\"a\":\"\\x41\"}",
                    "{\"a\":\"line\nbreak\"}",
                    "\xef\xbb\xbf{}",
                    "{\"a\":1}}",
                    "{\"a\":tru}",
                    "{\"a\"::1}",
                    "[1,]"});
  add("deep", {std::string(100000, '[') + std::string(100000, ']'),
               [] {
                 std::string s;
                 for (int i = 0; i < 100000; ++i) s += "{\"a\":";
                 return s + "1" + std::string(100000, '}');
               }(),
               std::string(100000, '['), std::string(100000, '{')});
  add("utf8", {"{\"title\":\"\xff\"}", "{\"title\":\"\xc0\xaf\"}", "{\"title\":\"\xed\xa0\x80\"}",
               "{\"title\":\"\xe2\x82\"}", "{\"title\":\"\xf8\x88\x80\x80\x80\"}", "{\"\xfe\":1}",
               Bytes("\xff\xfe{\x00}\x00"), Bytes("{\x00\"\x00}\x00")});
  add("nul", {Bytes("{\"title\":\"a\0b\"}"), Bytes("\0{}"), Bytes("{}\0"), Bytes("{\"ti\0tle\":1}"),
              std::string(64, '\0')});
  add("type", {"null", "[]", "\"str\"", "42", "true", "[{}]", "", "   ", "\r\n"});
  add("number",
      {"{\"priority\":1e999}", "{\"priority\":-1e999}", "{\"priority\":99999999999999999999999999}",
       "{\"priority\":-9223372036854775809}", "{\"limit\":-1}", "{\"limit\":1e308}",
       "{\"estimated_minutes\":-5}", "{\"priority\":\"7\"}",
       "{\"title\":\"x\",\"priority\":" + std::string(5000, '9') + "}"});
  add("oversized", {"{\"title\":\"" + std::string(1200 * 1024, 'a') + "\"}"});
  return f;
}

// Valid JSON whose strings are hostile: stored as given (or refused with a
// 4xx), never interpreted.
std::vector<std::string> HostileStrings() {
  return {"'; DROP TABLE micro_tasks; --",
          "\" OR 1=1 --",
          "1' UNION SELECT key_hash FROM api_keys --",
          "Robert'); DELETE FROM semantic_memory WHERE ('1'='1",
          "\"unbalanced",
          "NEAR(a b",
          "* OR title:*",
          "content:secret AND NOT x",
          "a AND OR NOT b ^start",
          "{a b}:x )(",
          "../../../../etc/passwd",
          "..\\..\\windows\\system32",
          "%2e%2e%2f%2e%2e%2f",
          "\xe2\x80\xaegnp.exe",
          "zero\xe2\x80\x8bwidth e\xcc\x81 \xf0\x9f\x9a\x80",
          "<script>alert(1)</script>",
          "${jndi:ldap://x}{{7*7}}%s%n",
          "\r\nSet-Cookie: x=y",
          "\\u0000 literal"};
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    db_ = dir_ + "/bad.db";
    ASSERT_EQ(RunCli({"migrate", "up", "--db", db_}).exit_code, 0);
    // Small limits so slowloris is cut off within a second or two.
    std::ofstream(dir_ + "/config.yml") << "server:\n  idle_timeout_s: 1\n  request_timeout_s: 2\n"
                                           "  header_limit_bytes: 8192\n";
    server_ = std::make_unique<ServerProcess>(
        db_, std::vector<std::string>{},
        EnvVars{{"DEVSTREAM_CONFIG", dir_ + "/config.yml"}, {"DEVSTREAM_SERVICE_MODE", "api"}});
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  HttpResult Post(const std::string& path, const std::string& body) {
    return Http(server_->port(), "POST", path, body);
  }
  static std::string Id(const HttpResult& r) {
    auto v = r.Json();
    if (!v.is_object() || !v.as_object().contains("id")) return "";
    if (v.at("id").is_int64()) return std::to_string(v.at("id").as_int64());
    return std::string(v.at("id").as_string());
  }

  // Runs the cases on 4 connections at a time; returns the replies in order.
  std::vector<Reply> RunAll(const std::vector<Case>& cases, int timeout_ms = 15000) {
    std::vector<Reply> replies(cases.size());
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < cases.size(); i = next++) {
          replies[i] = ParseReply(RawExchange(server_->port(), cases[i].bytes, timeout_ms));
        }
      });
    }
    for (auto& th : threads) th.join();
    return replies;
  }

  // Checks every reply against its expectation; returns how many were sent.
  size_t Check(const std::vector<Case>& cases, const std::vector<Reply>& replies) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const Reply& r = replies[i];
      std::string what = c.name + " → " + std::to_string(r.status) + " " + r.body.substr(0, 300);
      EXPECT_TRUE(r.status < 500) << "server error: " << what;
      EXPECT_TRUE(r.extra.empty()) << "a second response (smuggled request served): " << c.name
                                   << ": " << r.extra.substr(0, 200);
      if (r.status >= 500) ++server_errors_;
      bool problem = r.content_type == "application/problem+json" && IsProblem(r.body, r.status);
      switch (c.expect) {
        case Expect::kReject:
          EXPECT_TRUE(r.status >= 400 && r.status < 500 && problem) << what;
          break;
        case Expect::kRejectOrClose:
          EXPECT_TRUE(r.status == 0 || (r.status >= 400 && r.status < 500 && problem)) << what;
          break;
        case Expect::kNoServerError:
          EXPECT_TRUE(r.status >= 200 && r.status < 500) << what;
          if (r.status >= 400) {
            EXPECT_TRUE(problem) << what;
          }
          break;
        case Expect::kJsonRpcAccepted:
          if (r.status == 202) {
            EXPECT_TRUE(r.body.empty()) << what;
            break;
          }
          [[fallthrough]];
        case Expect::kJsonRpcError:
          EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500)) << what;
          EXPECT_TRUE(IsJsonRpcError(r.body)) << what;
          break;
      }
    }
    return cases.size();
  }

  static bool IsProblem(const std::string& body, int status) {
    json::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return false;
    const json::value* s = v.as_object().if_contains("status");
    return s && s->is_int64() && s->as_int64() == status && v.as_object().contains("type");
  }

  static bool IsJsonRpcError(const std::string& body) {
    json::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec) return false;
    auto one = [](const json::value& m) {
      if (!m.is_object() || m.as_object().if_contains("jsonrpc") == nullptr) return false;
      if (m.as_object().contains("error")) return m.at("error").as_object().contains("code");
      const json::value* result = m.as_object().if_contains("result");
      return result && result->is_object() && result->as_object().contains("isError") &&
             result->at("isError").as_bool();
    };
    if (v.is_array()) {
      if (v.as_array().empty()) return false;
      for (const auto& m : v.as_array()) {
        if (!one(m)) return false;
      }
      return true;
    }
    return one(v);
  }

  // The path of an OpenAPI operation with real ids of the seed data.
  std::string Fill(const std::string& path) const {
    std::string out = path;
    auto put = [&](const std::string& param, const std::string& value) {
      if (auto p = out.find(param); p != std::string::npos) out.replace(p, param.size(), value);
    };
    put("{dep}", task_a_);
    put("{event}", "SessionStart");
    if (out.rfind("/api/v1/projects/", 0) == 0) put("{id}", project_);
    if (out.rfind("/api/v1/plans/", 0) == 0) put("{id}", plan_);
    if (out.rfind("/api/v1/phases/", 0) == 0) put("{id}", phase_);
    if (out.rfind("/api/v1/tasks/", 0) == 0) put("{id}", task_b_);
    if (out.rfind("/api/v1/memories/", 0) == 0) put("{id}", memory_);
    if (out.rfind("/api/v1/jobs/", 0) == 0) put("{id}", job_);
    if (out.rfind("/api/v1/sessions/", 0) == 0) put("{id}", session_);
    return out;
  }

  void Seed() {
    auto plan = Post("/api/v1/plans", R"({"title":"Seed plan","priority":7,"project":"seed"})");
    ASSERT_EQ(plan.status, 201) << plan.body;
    plan_ = Id(plan);
    project_ = std::string(plan.Json().at("project_id").as_string());
    auto phase = Post("/api/v1/plans/" + plan_ + "/phases", R"({"name":"Build"})");
    ASSERT_EQ(phase.status, 201) << phase.body;
    phase_ = Id(phase);
    auto a = Post("/api/v1/phases/" + phase_ + "/tasks", R"({"title":"Schema"})");
    ASSERT_EQ(a.status, 201) << a.body;
    task_a_ = Id(a);
    auto b = Post("/api/v1/phases/" + phase_ + "/tasks",
                  R"({"title":"Endpoint","depends_on":[")" + task_a_ + R"("]})");
    ASSERT_EQ(b.status, 201) << b.body;
    task_b_ = Id(b);
    for (const char* content : {"Decision: SQLite in WAL mode", "Login uses OAuth device flow",
                                "The deploy script rolls back on failure"}) {
      auto m = Post("/api/v1/memories", std::string(R"({"content":")") + content +
                                            R"(","content_type":"decision","project":"seed"})");
      ASSERT_EQ(m.status, 201) << m.body;
      memory_ = Id(m);
    }
    auto session = Post("/api/v1/sessions", R"({"project":"seed","agent":"seeder"})");
    ASSERT_EQ(session.status, 201) << session.body;
    session_ = Id(session);
    auto job = Post("/api/v1/jobs", R"({"kind":"rollup"})");
    ASSERT_TRUE(job.status == 201 || job.status == 200) << job.body;
    job_ = Id(job);
  }

  std::string dir_, db_;
  std::unique_ptr<ServerProcess> server_;
  std::string project_, plan_, phase_, task_a_, task_b_, memory_, session_, job_;
  int server_errors_ = 0;
};

TEST_F(BadInputTest, HostileRequestsAreRefusedAndChangeNothing) {
  Seed();
  if (HasFatalFailure()) return;
  json::value spec = json::parse(ReadSource("src/api/openapi.json"));
  ASSERT_TRUE(spec.is_object()) << "cannot read src/api/openapi.json under " DEVSTREAM_SOURCE_DIR;

  // ---- 1. Valid requests carrying hostile strings are stored verbatim in
  // their own project and change no other row.
  const std::string before_valid = Snapshot(db_);
  auto hplan = Post("/api/v1/plans", R"({"title":"Hostile","project":"hostile"})");
  ASSERT_EQ(hplan.status, 201) << hplan.body;
  auto hphase = Post("/api/v1/plans/" + Id(hplan) + "/phases", R"({"name":"H"})");
  ASSERT_EQ(hphase.status, 201) << hphase.body;
  size_t stored = 0;
  int verbatim_requests = 0;
  for (const auto& s : HostileStrings()) {
    std::string quoted = json::serialize(json::value(s));
    struct Write {
      std::string create, body, get_prefix, field;
    };
    std::vector<Write> writes = {
        {"/api/v1/plans", R"({"project":"hostile","title":)" + quoted + "}", "/api/v1/plans/",
         "title"},
        {"/api/v1/phases/" + Id(hphase) + "/tasks", R"({"title":)" + quoted + "}", "/api/v1/tasks/",
         "title"},
        {"/api/v1/memories",
         R"({"project":"hostile","content_type":"context","content":)" + quoted + "}",
         "/api/v1/memories/", "content"},
    };
    for (const auto& w : writes) {
      auto r = Post(w.create, w.body);
      ++verbatim_requests;
      ASSERT_LT(r.status, 500) << s << ": " << r.body;
      if (r.status != 201) {
        EXPECT_TRUE(r.status >= 400 && r.status < 500) << s << ": " << r.body;
        continue;
      }
      auto got = Http(server_->port(), "GET", w.get_prefix + Id(r));
      ++verbatim_requests;
      ASSERT_EQ(got.status, 200) << got.body;
      EXPECT_EQ(std::string(got.Json().at(w.field).as_string()), s) << "not stored verbatim";
      ++stored;
    }
    // Searching for them (FTS syntax included) is an answer, not an error.
    for (const char* path : {"/api/v1/search", "/api/v1/context"}) {
      auto r = Post(path, R"({"project":"hostile","query":)" + quoted + "}");
      ++verbatim_requests;
      EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500)) << s << ": " << r.body;
    }
    auto listed = Http(server_->port(), "GET", "/api/v1/tasks?assigned_agent=" + PercentEncode(s));
    ++verbatim_requests;
    EXPECT_TRUE(listed.status == 200 || listed.status == 422) << s << ": " << listed.body;
  }
  EXPECT_EQ(stored, HostileStrings().size() * 3) << "every hostile string is valid input";
  {
    // Nothing that existed before changed or vanished.
    auto before = Lines(before_valid), after = Lines(Snapshot(db_));
    for (const auto& line : before) {
      EXPECT_GE(after.count(line), before.count(line)) << "row changed or removed: " << line;
    }
  }

  // ---- 2. The corpus: nothing may change from here on.
  const std::string snapshot = Snapshot(db_);
  const auto jobs_before = QueryDatabase(db_, "SELECT count(*) FROM jobs");
  std::vector<Case> cases;

  // Every operation with a body × every broken-body family.
  const auto families = BodyFamilies();
  int body_ops = 0, get_ops = 0, param_ops = 0;
  for (const auto& [path, item] : spec.at("paths").as_object()) {
    for (const auto& [method_key, op] : item.as_object()) {
      std::string method(method_key);
      std::transform(method.begin(), method.end(), method.begin(), ::toupper);
      std::string p(path);
      if (p == "/mcp") continue;  // JSON-RPC: its own table below
      std::string target = Fill(p);
      if (op.as_object().contains("requestBody")) {
        ++body_ops;
        const json::value* required = op.at("requestBody").as_object().if_contains("required");
        bool body_required = required && required->is_bool() && required->as_bool();
        for (const auto& [fname, body] : families) {
          // An optional body may be empty: that is a valid request, not a hostile one.
          if (!body_required && body.find_first_not_of(" \r\n") == std::string::npos) continue;
          Expect e = fname.rfind("oversized", 0) == 0 ? Expect::kRejectOrClose : Expect::kReject;
          cases.push_back({method + " " + p + " " + fname, Request(method, target, body), e, true});
        }
        // A valid-looking body with the wrong (or no) content type.
        cases.push_back({method + " " + p + " text/plain",
                         Request(method, target, R"({"title":"x"})", "text/plain"),
                         Expect::kReject});
        cases.push_back({method + " " + p + " no content type",
                         Request(method, target, R"({"title":"x"})", ""), Expect::kReject});
        cases.push_back({method + " " + p + " form",
                         Request(method, target, "title=x", "application/x-www-form-urlencoded"),
                         Expect::kReject});
      }
      if (method == "GET") {
        ++get_ops;
        for (const std::string& q :
             std::vector<std::string>{"limit=-1",
                                      "limit=0",
                                      "limit=abc",
                                      "limit=1e999",
                                      "limit=99999999999999999999",
                                      "limit=%00",
                                      "cursor=garbage",
                                      "cursor=%27%3B%20DROP%20TABLE%20micro_tasks%3B--",
                                      "cursor=" + std::string(3000, 'A'),
                                      "status=%27%20OR%201%3D1--",
                                      "priority_min=-99999999999999999999",
                                      "include_archived=maybe",
                                      "plan_id=..%2F..%2Fetc%2Fpasswd",
                                      "project=%27%20OR%20%271%27%3D%271",
                                      "project=%FF%FE",
                                      "q=%C0%AF",
                                      "a=1&a=2&a=3",
                                      "%=%",
                                      "&&&",
                                      "limit"}) {
          cases.push_back(
              {"GET " + p + "?" + q,
               Request("GET", target + (target.find('?') == std::string::npos ? "?" : "&") + q, "",
                       ""),
               Expect::kNoServerError});
        }
      }
      if (p.find('{') != std::string::npos) {
        ++param_ops;
        for (const std::string& id : std::vector<std::string>{
                 "%27%20OR%20%271%27%3D%271", "1%20OR%201%3D1",
                 "%27%3B%20DROP%20TABLE%20micro_tasks%3B--", "..%2F..%2Fetc%2Fpasswd", "..",
                 "%2e%2e", "%00", "%FF", "%C0%AF", "*", "%25", "99999999999999999999999999", "-1",
                 "0", std::string(5000, 'A'), "%3Cscript%3E", "%0d%0aSet-Cookie:x"}) {
          std::string hostile = p;
          for (const char* param : {"{id}", "{dep}", "{event}"}) {
            if (auto pos = hostile.find(param); pos != std::string::npos) {
              hostile.replace(pos, std::strlen(param), id);
            }
          }
          std::string body = op.as_object().contains("requestBody") ? R"({"title":"pwned"})" : "";
          cases.push_back(
              {method + " " + p + " id=" + id.substr(0, 40),
               Request(method, Fill(hostile), body, body.empty() ? "" : "application/json"),
               Expect::kReject});
        }
      }
    }
  }
  // Raw traversal in the path itself.
  for (const std::string& t :
       std::vector<std::string>{"/api/v1/tasks/../../../etc/passwd", "/api/v1/../../etc/passwd",
                                "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/api/v1/plans/%2F",
                                "/api/v1/memories/1/../../../../etc/shadow"}) {
    cases.push_back({"GET " + t, Request("GET", t, "", ""), Expect::kReject});
  }
  // Backup jobs: a name is a plain file name; traversal and paths are refused.
  std::string marker = dir_ + "/pwned-backup";
  for (const std::string& payload : std::vector<std::string>{
           R"({"name":"../../../../tmp/pwned"})", R"({"name":"..\\..\\pwned"})",
           R"({"name":"/etc/passwd"})", R"({"name":"a/b"})", R"({"name":".."})", R"({"name":"."})",
           R"({"name":""})", R"({"name":"x\u0000y"})", R"({"name":"%2e%2e%2fpwned"})",
           R"({"name":)" + json::serialize(json::value(marker)) + "}",
           R"({"path":)" + json::serialize(json::value(marker)) + "}",
           R"({"name":")" + std::string(5000, 'a') + R"("})", R"({"name":7})"}) {
    cases.push_back(
        {"backup job " + payload.substr(0, 60),
         Request("POST", "/api/v1/jobs", R"({"kind":"backup","payload":)" + payload + "}"),
         Expect::kReject});
  }
  const size_t rest_cases = cases.size();

  // ---- /mcp: hostile JSON-RPC is answered with JSON-RPC errors.
  auto mcp = [&](const std::string& name, const std::string& body, Expect e = Expect::kJsonRpcError,
                 std::vector<std::string> headers = {}) {
    headers.push_back("Accept: application/json, text/event-stream");
    cases.push_back({"mcp " + name, Request("POST", "/mcp", body, "application/json", headers), e});
  };
  for (const auto& [fname, body] : families) {
    if (fname.rfind("oversized", 0) == 0) continue;
    // Parseable JSON that is not a request object is still an error; the
    // "number" family is well-formed objects without "jsonrpc".
    mcp(fname, body);
  }
  for (
      const std::string& body : std::vector<std::string>{
          R"([])", R"([1,2])", R"({"jsonrpc":"1.0","id":1,"method":"ping"})",
          R"({"jsonrpc":"2.0","id":1})", R"({"jsonrpc":"2.0","id":1,"method":5})",
          R"({"jsonrpc":"2.0","id":{},"method":"ping"})",
          R"({"jsonrpc":"2.0","id":[1],"method":"ping"})",
          R"({"jsonrpc":"2.0","id":1e999,"method":"ping"})",
          R"({"jsonrpc":"2.0","id":1,"method":"nope"})",
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"zzz"}})",
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"})",
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}})",
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})",
          R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/passwd"}})",
          R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"../../x"}})",
          R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}})",
          R"([{"jsonrpc":"2.0","id":1,"method":"nope"},{"jsonrpc":"2.0","id":2}])",
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\xff\"}",
          Bytes("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\0ng\"}")}) {
    mcp(body.substr(0, 60), body);
  }
  mcp("notification of an unknown method", R"({"jsonrpc":"2.0","method":"nope"})",
      Expect::kJsonRpcAccepted);
  // Every tool, with arguments of the wrong shape, and (tools that need
  // arguments) with none or with wrong-typed ones.
  auto tools_list =
      Http(server_->port(), "POST", "/mcp", R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})",
           {{"Accept", "application/json"}});
  ASSERT_EQ(tools_list.status, 200) << tools_list.body;
  int tools = 0;
  const json::value tools_json = tools_list.Json();
  for (const auto& tool : tools_json.at("result").at("tools").as_array()) {
    ++tools;
    std::string name(tool.at("name").as_string());
    auto call = [&](const std::string& args) {
      return R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":")" + name +
             R"(","arguments":)" + args + "}}";
    };
    for (const char* args : {"\"x\"", "[]", "5"}) mcp(name + " args " + args, call(args));
    const auto& schema = tool.at("inputSchema").as_object();
    const json::value* required = schema.if_contains("required");
    if (required && !required->as_array().empty()) {
      mcp(name + " no args", call("{}"));
      json::object wrong;
      for (const auto& r : required->as_array()) wrong[r.as_string()] = json::object{{"$gt", ""}};
      mcp(name + " wrong types", call(json::serialize(wrong)));
    }
  }
  EXPECT_GE(tools, 6);
  // Transport-level refusals on /mcp.
  cases.push_back(
      {"mcp wrong protocol version",
       Request("POST", "/mcp", R"({"jsonrpc":"2.0","id":1,"method":"ping"})", "application/json",
               {"Accept: application/json", "MCP-Protocol-Version: 1999-01-01"}),
       Expect::kJsonRpcError});
  cases.push_back(
      {"mcp unknown session",
       Request("POST", "/mcp", R"({"jsonrpc":"2.0","id":1,"method":"ping"})", "application/json",
               {"Accept: application/json", "Mcp-Session-Id: ../../etc/passwd"}),
       Expect::kJsonRpcError});
  cases.push_back({"mcp not acceptable",
                   Request("POST", "/mcp", R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
                           "application/json", {"Accept: text/html"}),
                   Expect::kJsonRpcError});
  cases.push_back({"mcp delete unknown session",
                   Request("DELETE", "/mcp", "", "", {"Mcp-Session-Id: %00"}),
                   Expect::kJsonRpcError});
  const size_t mcp_cases = cases.size() - rest_cases;

  // ---- raw protocol: framing attacks, each followed by a pipelined request
  // that would create a plan if the server read past the framing error.
  const std::string canary_body = R"({"title":"smuggled-canary","project":"seed"})";
  const std::string canary =
      "POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(canary_body.size()) + "\r\n\r\n" + canary_body;
  auto post_head = [](const std::string& headers) {
    return "POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
           headers + "\r\n";
  };
  std::vector<std::pair<std::string, std::string>> framing = {
      {"CL+TE", post_head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n"},
      {"TE+CL", post_head("Transfer-Encoding: chunked\r\nContent-Length: 40\r\n") + "0\r\n\r\n"},
      {"CL.TE smuggle",
       post_head("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\nX"},
      {"TE.CL smuggle", post_head("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") +
                            "5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n"},
      {"duplicate CL differing", post_head("Content-Length: 2\r\nContent-Length: 40\r\n") + "{}"},
      {"CL list", post_head("Content-Length: 2, 40\r\n") + "{}"},
      {"CL plus sign", post_head("Content-Length: +2\r\n") + "{}"},
      {"CL hex", post_head("Content-Length: 0x2\r\n") + "{}"},
      {"CL negative", post_head("Content-Length: -1\r\n") + "{}"},
      {"CL overflow", post_head("Content-Length: 99999999999999999999999\r\n") + "{}"},
      {"CL exponent", post_head("Content-Length: 2e0\r\n") + "{}"},
      {"CL space before colon", post_head("Content-Length : 2\r\n") + "{}"},
      {"TE chunked, identity", post_head("Transfer-Encoding: chunked, identity\r\n")},
      {"TE identity", post_head("Transfer-Encoding: identity\r\n")},
      {"TE xchunked", post_head("Transfer-Encoding: xchunked\r\n")},
      {"TE chunked-x", post_head("Transfer-Encoding: chunked-x\r\n")},
      {"TE gzip", post_head("Transfer-Encoding: gzip\r\n")},
      {"TE space before colon", post_head("Transfer-Encoding : chunked\r\n")},
      {"TE vertical tab", post_head("Transfer-Encoding:\x0b"
                                    "chunked\r\n")},
      {"TE duplicate identity",
       post_head("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")},
      {"TE obs-fold", post_head("Transfer-Encoding: identity\r\n chunked\r\n")},
      {"TE leading space + garbage chunk", post_head("Transfer-Encoding:  chunked\r\n") + "zz\r\n"},
      {"TE tab + garbage chunk", post_head("Transfer-Encoding:\tchunked\r\n") + "zz\r\n"},
      {"chunk size garbage", post_head("Transfer-Encoding: chunked\r\n") + "zz\r\n{}\r\n0\r\n\r\n"},
      {"chunk size overflow",
       post_head("Transfer-Encoding: chunked\r\n") + "ffffffffffffffffffff\r\n{}\r\n"},
      {"chunk size negative",
       post_head("Transfer-Encoding: chunked\r\n") + "-2\r\n{}\r\n0\r\n\r\n"},
      {"chunk data overrun",
       post_head("Transfer-Encoding: chunked\r\n") + "2\r\n{}XX\r\n0\r\n\r\n"},
      {"chunk ext NUL",
       post_head("Transfer-Encoding: chunked\r\n") + Bytes("2;\0\r\n{}\r\n0\r\n\r\n")},
      {"bare LF", "POST /api/v1/plans HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}"},
      {"header without colon", post_head("Content-Length 2\r\n") + "{}"},
      {"NUL in header", post_head(Bytes("X-A: a\0b\r\nContent-Length: 2\r\n")) + "{}"},
      {"CR in header", post_head("X-A: a\rb\r\nContent-Length: 2\r\n") + "{}"},
      {"space in header name", post_head("X A: b\r\nContent-Length: 2\r\n") + "{}"},
  };
  for (const auto& [name, bytes] : framing) {
    cases.push_back({"raw " + name, bytes + canary, Expect::kRejectOrClose});
  }
  std::string many_headers;
  for (int i = 0; i < 1500; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  std::vector<std::pair<std::string, std::string>> raw = {
      {"garbage line", "GARBAGE\r\n\r\n"},
      {"method only", "GET\r\n\r\n"},
      {"HTTP/0.9", "GET /health/live\r\n\r\n"},
      {"HTTP/9.9", "GET /health/live HTTP/9.9\r\nHost: x\r\n\r\n"},
      {"HTTP/1.1x", "GET /health/live HTTP/1.1x\r\nHost: x\r\n\r\n"},
      {"extra token", "GET /health/live HTTP/1.1 x\r\nHost: x\r\n\r\n"},
      {"double space", "GET  /health/live  HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"binary", Bytes("\x00\x01\x02\x03\r\n\r\n")},
      {"TLS hello", Bytes("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
      {"DEL in target",
       "GET /a\x7f"
       "b HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"invalid UTF-8 target", "GET /api/v1/plans/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"NUL in method", Bytes("G\0T /health/live HTTP/1.1\r\nHost: x\r\n\r\n")},
      {"CONNECT", "CONNECT evil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"header too large",
       "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n"},
      {"too many headers", "GET /health/live HTTP/1.1\r\nHost: x\r\n" + many_headers + "\r\n"},
      {"target too long",
       "GET /api/v1/plans/" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"absurd CL", post_head("Content-Length: 1000000000000\r\n") + "{}"},
      {"absurd CL with Expect",
       post_head("Content-Length: 1000000000000\r\nExpect: 100-continue\r\n")},
  };
  for (const auto& [name, bytes] : raw)
    cases.push_back({"raw " + name, bytes, Expect::kRejectOrClose});
  const size_t raw_cases = cases.size() - rest_cases - mcp_cases;

  auto t0 = Clock::now();
  auto replies = RunAll(cases);
  size_t sent = Check(cases, replies);
  // The ids are real, so a broken body is judged as a body (400/413/422), not
  // as a missing resource: the cases reach the parsers they are aimed at.
  std::map<int, int> histogram;
  for (size_t i = 0; i < replies.size(); ++i) {
    ++histogram[replies[i].status];
    if (cases[i].body_family) {
      EXPECT_NE(replies[i].status, 404) << cases[i].name << ": " << replies[i].body.substr(0, 200);
    }
  }
  std::string statuses;
  for (const auto& [status, n] : histogram) {
    statuses += " " + std::to_string(status) + "×" + std::to_string(n);
  }
  double corpus_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GT(body_ops, 15);
  EXPECT_GT(get_ops, 20);
  EXPECT_GT(param_ops, 25);

  // ---- slowloris: header and body dribbled slowly, and a silent connection,
  // are closed by the server (idle_timeout_s 1 for the header, request_timeout_s 2
  // for the body) while other clients are served.
  struct Slow {
    std::string name, first;
    std::function<std::string(int)> drip;
  };
  std::vector<Slow> slow = {
      {"header dribble", "GET /health/live HTTP/1.1\r\nHost: x\r\n",
       [](int i) { return "X-Slow-" + std::to_string(i) + ": y\r\n"; }},
      {"body dribble", post_head("Content-Length: " + std::to_string(canary_body.size())),
       [](int) { return std::string("{"); }},
      {"silent", "", [](int) { return std::string(); }},
  };
  slow[1].first += "\r\n";
  std::vector<double> closed_after(slow.size(), -1);
  std::vector<std::string> slow_got(slow.size());
  std::vector<std::thread> slow_threads;
  for (size_t i = 0; i < slow.size(); ++i) {
    slow_threads.emplace_back([&, i] {
      int fd = Connect(server_->port());
      if (fd < 0) return;
      auto start = Clock::now();
      SendAll(fd, slow[i].first);
      for (int n = 0; Clock::now() - start < std::chrono::seconds(8); ++n) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
          char buf[4096];
          ssize_t got = recv(fd, buf, sizeof buf, 0);
          if (got <= 0) break;
          slow_got[i].append(buf, static_cast<size_t>(got));
          continue;
        }
        std::string d = slow[i].drip(n);
        if (!d.empty() && send(fd, d.data(), d.size(), MSG_NOSIGNAL) <= 0) break;
      }
      closed_after[i] = std::chrono::duration<double>(Clock::now() - start).count();
      close(fd);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto during = Http(server_->port(), "GET", "/health/live");
  EXPECT_EQ(during.status, 200) << "slow clients must not block others";
  for (auto& th : slow_threads) th.join();
  for (size_t i = 0; i < slow.size(); ++i) {
    EXPECT_GT(closed_after[i], 0.5) << slow[i].name;
    EXPECT_LT(closed_after[i], 5.0) << slow[i].name << ": the server did not cut it off";
    EXPECT_EQ(slow_got[i].find("HTTP/1.1 2"), std::string::npos) << slow[i].name << slow_got[i];
    EXPECT_EQ(slow_got[i].find("HTTP/1.1 5"), std::string::npos) << slow[i].name << slow_got[i];
  }

  // ---- afterwards: alive, healthy, answering, and nothing changed.
  int status = 0;
  ASSERT_EQ(waitpid(server_->pid(), &status, WNOHANG), 0) << "the server died";
  ASSERT_EQ(kill(server_->pid(), 0), 0);
  auto health = Http(server_->port(), "GET", "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  auto plan = Http(server_->port(), "GET", "/api/v1/plans/" + plan_);
  ASSERT_EQ(plan.status, 200) << plan.body;
  EXPECT_EQ(plan.Json().at("title").as_string(), "Seed plan");
  EXPECT_EQ(Diff(snapshot, Snapshot(db_)), "") << "the corpus changed stored data";
  EXPECT_EQ(QueryDatabase(db_, "SELECT count(*) FROM jobs"), jobs_before) << "a job was queued";
  EXPECT_EQ(QueryDatabase(db_,
                          "SELECT count(*) FROM intervention_plans WHERE title LIKE "
                          "'%smuggled-canary%' OR title = 'pwned'")[0][0],
            "0");
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_FALSE(std::filesystem::exists("/tmp/pwned"));
  EXPECT_EQ(server_errors_, 0);
  ASSERT_EQ(server_->Stop(), 0);
  server_.reset();
  EXPECT_EQ(Diff(snapshot, Snapshot(db_)), "") << "stored data changed by shutdown";
  std::ifstream log(db_ + ".server.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  for (const char* bad :
       {"AddressSanitizer", "runtime error:", "dispatch threw", "LeakSanitizer"}) {
    EXPECT_EQ(text.find(bad), std::string::npos) << bad;
  }
  std::cout << "[ bad-input ] " << verbatim_requests << " requests with hostile strings (" << stored
            << " stored verbatim); corpus: " << sent << " hostile requests (" << rest_cases
            << " REST, " << mcp_cases << " MCP, " << raw_cases << " raw protocol) in " << corpus_s
            << " s (statuses:" << statuses << "); " << slow.size() << " slowloris connections\n";
}

}  // namespace
}  // namespace ds::itest
