// `devstream hook <Event>` as Claude Code runs it: the real binary, one event
// JSON (recorded shape, tests/fixtures/hooks/) on stdin, a temporary git
// repository as the session's cwd. Checks the hook contract (exit 0; stdout
// empty or exactly one hookSpecificOutput object for the event) and what
// each event stores, locally (--db) and relayed to a running server
// (DEVSTREAM_URL); hostile input; the time budget.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "harness.h"

namespace ds::itest {
namespace {

namespace fs = std::filesystem;

// Generous for functional runs on a loaded machine (sanitizer builds); the
// hostile-input and budget tests use the default or their own budget.
constexpr char kFunctionalBudgetMs[] = "30000";
constexpr long kDefaultBudgetMs = 4000;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string FixtureDir() {
  // tests/integration/hooks_test.cpp -> tests/fixtures/hooks
  return (fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "hooks").string();
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

bool HasSanitizerReport(const std::string& err) {
  return err.find("AddressSanitizer") != std::string::npos ||
         err.find("LeakSanitizer") != std::string::npos ||
         err.find("runtime error:") != std::string::npos ||
         err.find("UndefinedBehaviorSanitizer") != std::string::npos;
}

// Lines of a source file of about `kb` KB; `tag` makes every line (and so
// every chunk) differ between versions.
std::string SourceText(const std::string& tag, int kb) {
  std::string out;
  for (int i = 0; static_cast<int>(out.size()) < kb * 1024; ++i) {
    out += "int " + tag + "_value_" + std::to_string(i) + "() { return " + std::to_string(i) +
           "; }  // padding padding padding padding padding padding\n";
  }
  return out;
}

// A loopback TCP listener that completes handshakes (kernel backlog) and
// never answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd_, 16) != 0) {
      return;
    }
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback HTTP responder that answers every request with `response`
// (until destroyed); stands in for something other than DevStream.
class FakeHttpServer {
 public:
  explicit FakeHttpServer(std::string response) : response_(std::move(response)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd_, 16) != 0) {
      return;
    }
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeHttpServer() {
    stop_ = true;
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      // Read the head and the body (Content-Length), then answer.
      std::string in;
      char buf[65536];
      for (;;) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        size_t head = in.find("\r\n\r\n");
        if (head == std::string::npos) continue;
        size_t cl = in.find("Content-Length: ");
        size_t want = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
        if (in.size() >= head + 4 + want) break;
      }
      ++requests_;
      send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
      close(c);
    }
  }
  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string HttpResponse(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A loopback port nothing listens on (bound, then released).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Sets (or replaces) one variable: a duplicate entry would shadow it.
void SetEnv(EnvVars& env, const std::string& name, const std::string& value) {
  for (auto& [k, v] : env) {
    if (k == name) {
      v = value;
      return;
    }
  }
  env.emplace_back(name, value);
}

enum class Mode { kLocal, kServer };

class HooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    repo_ = dir_ + "/repo";
    fs::create_directories(repo_ + "/.git");
    fs::create_directories(repo_ + "/src");
    WriteText(repo_ + "/.git/HEAD", "ref: refs/heads/main\n");
    db_ = dir_ + "/hooks.db";
    log_ = dir_ + "/state/hook-failures.log";
    decoy_db_ = dir_ + "/decoy/should-not-exist.db";
  }

  // The environment of every hook run: nothing of the user's reaches it.
  EnvVars BaseEnv() const {
    return {{"DEVSTREAM_HOOK_LOG", log_},      {"DEVSTREAM_URL", ""},
            {"DEVSTREAM_PROJECT", ""},         {"HOME", dir_ + "/home"},
            {"XDG_DATA_HOME", dir_ + "/data"}, {"XDG_STATE_HOME", dir_ + "/state"}};
  }

  // A fixture with its placeholders filled in, as an object to adjust.
  json::object Event(const std::string& name, const std::string& session_id = "sess-1") const {
    std::string text = ReadText(FixtureDir() + "/" + name + ".json");
    EXPECT_FALSE(text.empty()) << "missing fixture " << name << " in " << FixtureDir();
    ReplaceAll(text, "{{CWD}}", repo_);
    ReplaceAll(text, "{{SESSION_ID}}", session_id);
    ReplaceAll(text, "{{HOME}}", dir_ + "/home");
    json::error_code ec;
    json::value v = json::parse(text, ec);
    EXPECT_FALSE(ec) << name << ": " << ec.message();
    return v.is_object() ? v.as_object() : json::object{};
  }

  struct HookRun {
    CommandResult r;
    json::object output;  // empty when the hook printed nothing
    bool printed = false;
  };

  // Runs `devstream hook <event>` the way `mode_` says and checks the
  // contract every run must keep.
  HookRun Hook(const std::string& event, const std::string& input, EnvVars extra = {},
               std::vector<std::string> extra_args = {}, const std::string& cwd = "") {
    CliOptions o;
    o.env = BaseEnv();
    SetEnv(o.env, "DEVSTREAM_HOOK_TIMEOUT_MS", kFunctionalBudgetMs);
    std::vector<std::string> args{"hook", event};
    if (mode_ == Mode::kLocal) {
      args.push_back("--db");
      args.push_back(db_);
    } else {
      // The hook must relay: a local run would land in the decoy database.
      SetEnv(o.env, "DEVSTREAM_URL", "http://127.0.0.1:" + std::to_string(server_->port()));
      SetEnv(o.env, "DEVSTREAM_DATABASE_PATH", decoy_db_);
    }
    for (const auto& [k, v] : extra) SetEnv(o.env, k, v);
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    o.input = input;
    o.cwd = cwd.empty() ? repo_ : cwd;
    o.timeout_ms = 60000;
    HookRun run;
    run.r = RunCliWith(args, o);
    CheckContract(event, run);
    return run;
  }
  HookRun Hook(const std::string& event, const json::object& input) {
    return Hook(event, json::serialize(input));
  }

  // Exit 0, no sanitizer report, and stdout empty or exactly one JSON object
  // {"hookSpecificOutput": {"hookEventName": event, "additionalContext": str}}.
  static void CheckContract(const std::string& event, HookRun& run) {
    const CommandResult& r = run.r;
    EXPECT_EQ(r.exit_code, 0) << event << " stderr: " << r.err;
    EXPECT_FALSE(HasSanitizerReport(r.err)) << event << ": " << r.err;
    if (r.out.empty()) return;
    run.printed = true;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    json::error_code ec;
    json::value v = json::parse(r.out, ec);
    ASSERT_FALSE(ec) << event << " printed something that is not one JSON value: " << r.out;
    ASSERT_TRUE(v.is_object()) << r.out;
    ASSERT_EQ(v.as_object().size(), 1u) << r.out;
    const json::value* hso = v.as_object().if_contains("hookSpecificOutput");
    ASSERT_TRUE(hso && hso->is_object()) << r.out;
    const json::value* name = hso->as_object().if_contains("hookEventName");
    ASSERT_TRUE(name && name->is_string()) << r.out;
    EXPECT_EQ(name->as_string(), event);
    const json::value* ctx = hso->as_object().if_contains("additionalContext");
    ASSERT_TRUE(ctx && ctx->is_string()) << r.out;
    EXPECT_FALSE(ctx->as_string().empty()) << r.out;
    run.output = hso->as_object();
  }

  static std::string Context(const HookRun& run) {
    const json::value* c = run.output.if_contains("additionalContext");
    return c && c->is_string() ? std::string(c->as_string()) : std::string();
  }

  std::vector<std::vector<std::string>> Query(const std::string& sql) const {
    auto rows = QueryDatabase(db_, sql);
    if (rows.size() == 1 && !rows[0].empty() && rows[0][0].rfind("<error", 0) == 0) {
      ADD_FAILURE() << sql << ": " << rows[0][0];
      return {};
    }
    return rows;
  }
  std::string One(const std::string& sql) const {
    auto rows = Query(sql);
    return rows.size() == 1 && rows[0].size() == 1 ? rows[0][0]
                                                   : "<" + std::to_string(rows.size()) + " rows>";
  }
  // id|file_path|archived|superseded_by per code memory of the repo project.
  std::vector<std::vector<std::string>> CodeRows(const std::string& path_prefix) const {
    return Query(
        "SELECT m.id, m.file_path, m.archived, coalesce(m.superseded_by, 'NULL'), length(m.content)"
        " FROM semantic_memory m JOIN projects p ON p.id = m.project_id"
        " WHERE p.name = 'repo' AND m.content_type = 'code' AND m.file_path LIKE '" +
        path_prefix + "%' ORDER BY m.id");
  }
  // The live (current, unarchived) file paths under a prefix, sorted.
  std::vector<std::string> LivePaths(const std::string& path_prefix) const {
    std::vector<std::string> out;
    for (const auto& row : CodeRows(path_prefix)) {
      if (row[2] == "0" && row[3] == "NULL") out.push_back(row[1]);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string MemoryDump() const {
    std::string out;
    for (const auto& row :
         Query("SELECT id, content_type, coalesce(file_path, ''), archived,"
               " coalesce(superseded_by, ''), content_hash FROM semantic_memory ORDER BY id")) {
      for (const auto& c : row) out += c + "|";
      out += "\n";
    }
    return out;
  }
  std::string Log() const { return ReadText(log_); }

  // Stores a memory the way a user would (CLI on the same database).
  int64_t StoreMemory(const std::string& content, const std::string& type) {
    auto r = RunCli(
        {"--json", "memory", "store", content, "--type", type, "--project", "repo", "--db", db_},
        BaseEnv(), 60000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json::error_code ec;
    json::value v = json::parse(r.out, ec);
    if (ec || !v.is_object() || !v.as_object().contains("id")) {
      ADD_FAILURE() << r.out;
      return 0;
    }
    return v.at("id").as_int64();
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>(db_, std::vector<std::string>{}, BaseEnv());
    ASSERT_TRUE(server_->Start()) << ReadText(server_->log_path());
    mode_ = Mode::kServer;
  }

  // The whole life of two Claude Code sessions, event by event.
  void RunSessionScenario();
  void RunLargeWrite();
  void RunLargePrompt();
  void RunLargeBashOutput();

  std::string dir_, repo_, db_, log_, decoy_db_;
  Mode mode_ = Mode::kLocal;
  std::unique_ptr<ServerProcess> server_;
};

void HooksTest::RunSessionScenario() {
  // SessionStart: a work session keyed by Claude Code's session id, in the
  // project named after the git root.
  auto start = Hook("SessionStart", Event("SessionStart", "sess-1"));
  auto sessions = Query(
      "SELECT s.id, s.status, s.agent, p.name FROM work_sessions s JOIN projects p ON"
      " p.id = s.project_id WHERE s.external_id = 'sess-1'");
  ASSERT_EQ(sessions.size(), 1u);
  const std::string session = sessions[0][0];
  EXPECT_EQ(sessions[0][1], "active");
  EXPECT_EQ(sessions[0][2], "claude-code");
  EXPECT_EQ(sessions[0][3], "repo");

  // PostToolUse Write: a `code` memory, path relative to the repository,
  // linked to the session; the file's content is read from disk.
  WriteText(repo_ + "/src/x.cpp",
            "// retry backoff for the HTTP client\nconstexpr int kMaxBackoffSeconds = 30;\n");
  auto write = Hook("PostToolUse", Event("PostToolUse_Write", "sess-1"));
  EXPECT_FALSE(write.printed) << write.r.out;
  auto v1 = Query(
      "SELECT m.id, m.source, coalesce(m.session_id, 'NULL'), m.content, p.name FROM"
      " semantic_memory m JOIN projects p ON p.id = m.project_id WHERE m.content_type = 'code'"
      " AND m.file_path = 'src/x.cpp'");
  ASSERT_EQ(v1.size(), 1u);
  EXPECT_EQ(v1[0][1], "hook");
  EXPECT_EQ(v1[0][2], session);
  EXPECT_NE(v1[0][3].find("kMaxBackoffSeconds = 30"), std::string::npos);
  EXPECT_EQ(v1[0][4], "repo");

  // Edit, then MultiEdit: each newer snapshot supersedes the older.
  WriteText(repo_ + "/src/x.cpp",
            "// retry backoff for the HTTP client\nconstexpr int kMaxBackoffSeconds = 60;\n");
  Hook("PostToolUse", Event("PostToolUse_Edit", "sess-1"));
  WriteText(repo_ + "/src/x.cpp",
            "// retry backoff for the HTTP/2 client\nconstexpr int kMaxBackoffSeconds = 45;\n");
  Hook("PostToolUse", Event("PostToolUse_MultiEdit", "sess-1"));
  auto x = CodeRows("src/x.cpp");
  ASSERT_EQ(x.size(), 3u);
  EXPECT_EQ(x[0][3], x[1][0]) << "the first snapshot is superseded by the second";
  EXPECT_EQ(x[1][3], x[2][0]) << "the second snapshot is superseded by the third";
  EXPECT_EQ(x[2][3], "NULL");
  EXPECT_EQ(LivePaths("src/x.cpp"), std::vector<std::string>{"src/x.cpp"});

  // NotebookEdit: notebook_path names the file.
  WriteText(
      repo_ + "/notebooks/analysis.ipynb",
      "{\"cells\": [{\"cell_type\": \"code\", \"source\": [\"df.latency_ms.quantile(0.99)\"]}],"
      " \"nbformat\": 4}\n");
  Hook("PostToolUse", Event("PostToolUse_NotebookEdit", "sess-1"));
  EXPECT_EQ(LivePaths("notebooks/"), std::vector<std::string>{"notebooks/analysis.ipynb"});

  // A Write from a subdirectory (cwd below the git root) lands in the same
  // project with the path relative to the root.
  WriteText(repo_ + "/src/util/y.cpp", "int helper_for_the_subdirectory_case() { return 7; }\n");
  {
    json::object e = Event("PostToolUse_Write", "sess-1");
    e["cwd"] = repo_ + "/src/util";
    e["tool_input"].as_object()["file_path"] = repo_ + "/src/util/y.cpp";
    Hook("PostToolUse", e);
    EXPECT_EQ(LivePaths("src/util/"), std::vector<std::string>{"src/util/y.cpp"});
  }

  // A file over 12 KB is stored in chunks; when it shrinks, the chunks the
  // new version no longer has are archived.
  {
    json::object e = Event("PostToolUse_Write", "sess-1");
    e["tool_input"].as_object()["file_path"] = repo_ + "/src/big.cpp";
    std::string big_v1 = SourceText("v1", 30);
    WriteText(repo_ + "/src/big.cpp", big_v1);
    Hook("PostToolUse", e);
    EXPECT_EQ(
        LivePaths("src/big.cpp"),
        (std::vector<std::string>{"src/big.cpp", "src/big.cpp#chunk-2", "src/big.cpp#chunk-3"}));
    size_t total = 0;
    for (const auto& row : CodeRows("src/big.cpp")) {
      EXPECT_LE(std::stoul(row[4]), 12u * 1024) << row[1];
      total += std::stoul(row[4]);
    }
    EXPECT_EQ(total, big_v1.size()) << "the chunks together are the file";
    auto v1_rows = CodeRows("src/big.cpp");

    WriteText(repo_ + "/src/big.cpp", SourceText("v2", 14));
    Hook("PostToolUse", e);
    EXPECT_EQ(LivePaths("src/big.cpp"),
              (std::vector<std::string>{"src/big.cpp", "src/big.cpp#chunk-2"}));
    auto v2_rows = CodeRows("src/big.cpp");
    ASSERT_EQ(v2_rows.size(), 5u);
    // v1's chunk 3 has no successor: archived, not superseded.
    ASSERT_EQ(v1_rows.size(), 3u);
    for (const auto& row : v2_rows) {
      if (row[0] == v1_rows[2][0]) {
        EXPECT_EQ(row[1], "src/big.cpp#chunk-3");
        EXPECT_EQ(row[2], "1") << "stale chunk 3 must be archived";
      }
      if (row[0] == v1_rows[0][0] || row[0] == v1_rows[1][0]) {
        EXPECT_NE(row[3], "NULL") << row[1] << " of v1 must be superseded by v2";
      }
    }

    WriteText(repo_ + "/src/big.cpp", SourceText("v3", 2));
    Hook("PostToolUse", e);
    EXPECT_EQ(LivePaths("src/big.cpp"), std::vector<std::string>{"src/big.cpp"});
  }

  // Ignored and secret paths, and binary content, store nothing at all.
  {
    std::string before = MemoryDump();
    const std::vector<std::pair<std::string, std::string>> ignored = {
        {"node_modules/left-pad/index.js", "module.exports = function leftPad() {};\n"},
        {".git/config", "[core]\n\trepositoryformatversion = 0\n"},
        {"package-lock.json", "{\"lockfileVersion\": 3}\n"},
        {".env", "DATABASE_URL=postgres://localhost/app\n"},
        {"id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"},
        {"config/.env.production", "FEATURE_FLAG=1\n"},
        {"build/generated.cpp", "int generated() { return 1; }\n"},
        {"assets/blob.dat", std::string("header\0\x01\x02 binary payload\n", 24)},
        {"src/latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9\n"},  // not UTF-8
    };
    for (const auto& [rel, content] : ignored) {
      WriteText(repo_ + "/" + rel, content);
      json::object e = Event("PostToolUse_Write", "sess-1");
      e["tool_input"].as_object()["file_path"] = repo_ + "/" + rel;
      auto run = Hook("PostToolUse", e);
      EXPECT_FALSE(run.printed) << rel;
      EXPECT_EQ(MemoryDump(), before) << rel << " must not be stored";
    }
  }

  // PostToolUseFailure: an `error` memory with the command and the error.
  Hook("PostToolUseFailure", Event("PostToolUseFailure", "sess-1"));
  auto errors = Query(
      "SELECT m.content, coalesce(m.session_id, 'NULL'), m.source FROM semantic_memory m JOIN"
      " projects p ON p.id = m.project_id WHERE p.name = 'repo' AND m.content_type = 'error'");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0][0].find("ctest --test-dir build -R backoff"), std::string::npos)
      << errors[0][0];
  EXPECT_NE(errors[0][0].find("expected 30 got 60 (ordering violated in RetryPolicy)"),
            std::string::npos)
      << errors[0][0];
  EXPECT_EQ(errors[0][1], session);
  EXPECT_EQ(errors[0][2], "hook");

  // Bash PostToolUse: a successful command stores nothing; one that reports
  // a non-zero exit code stores an error memory with its output.
  {
    std::string before = MemoryDump();
    Hook("PostToolUse", Event("PostToolUse_Bash", "sess-1"));
    json::object ok = Event("PostToolUse_Bash", "sess-1");
    ok["tool_response"].as_object()["exit_code"] = 0;
    Hook("PostToolUse", ok);
    EXPECT_EQ(MemoryDump(), before) << "a successful command is not an error";

    json::object failed = Event("PostToolUse_Bash", "sess-1");
    failed["tool_input"].as_object()["command"] = "make -C build all";
    json::object& resp = failed["tool_response"].as_object();
    resp["stdout"] = "compiling x.cpp";
    resp["stderr"] = "x.cpp:2:1: error: unknown type name 'constexr'";
    resp["exit_code"] = 2;
    Hook("PostToolUse", failed);
    auto bash_errors = Query(
        "SELECT m.content FROM semantic_memory m WHERE m.content_type = 'error' AND"
        " m.content LIKE '%make -C build all%'");
    ASSERT_EQ(bash_errors.size(), 1u);
    EXPECT_NE(bash_errors[0][0].find("exit code 2"), std::string::npos) << bash_errors[0][0];
    EXPECT_NE(bash_errors[0][0].find("unknown type name 'constexr'"), std::string::npos)
        << bash_errors[0][0];
  }

  // PreToolUse on a file: the decisions about it (not its own snapshots).
  int64_t decision = StoreMemory(
      "Decision: the retry cap in src/x.cpp stays at thirty seconds because longer caps stall "
      "the deploy pipeline",
      "decision");
  ASSERT_GT(decision, 0);
  auto pre = Hook("PreToolUse", Event("PreToolUse", "sess-1"));
  ASSERT_TRUE(pre.printed) << "PreToolUse on src/x.cpp returned nothing; log: " << Log();
  EXPECT_NE(Context(pre).find("longer caps stall the deploy pipeline"), std::string::npos)
      << Context(pre);
  EXPECT_NE(Context(pre).find("src/x.cpp"), std::string::npos) << Context(pre);
  EXPECT_EQ(Context(pre).find("constexpr int kMaxBackoffSeconds"), std::string::npos)
      << "the file's own snapshots are not injected before editing it: " << Context(pre);

  // UserPromptSubmit: the relevant memories with their ids, recorded in
  // context_injections and linked to the session.
  auto prompt = Hook("UserPromptSubmit", Event("UserPromptSubmit", "sess-1"));
  ASSERT_TRUE(prompt.printed) << "no memories injected; log: " << Log();
  std::string ctx = Context(prompt);
  EXPECT_NE(ctx.find("thirty seconds"), std::string::npos) << ctx;
  auto injections = Query(
      "SELECT coalesce(i.session_id, 'NULL'), i.memory_ids, i.query, p.name FROM"
      " context_injections i JOIN projects p ON p.id = i.project_id");
  ASSERT_EQ(injections.size(), 1u);
  EXPECT_EQ(injections[0][0], session);
  EXPECT_EQ(injections[0][3], "repo");
  EXPECT_NE(injections[0][2].find("retry backoff"), std::string::npos);
  json::value ids = json::parse(injections[0][1]);
  ASSERT_TRUE(ids.is_array());
  ASSERT_FALSE(ids.as_array().empty());
  bool decision_injected = false;
  for (const auto& id : ids.as_array()) {
    std::string s = std::to_string(id.as_int64());
    EXPECT_NE(ctx.find(s), std::string::npos) << "id " << s << " not named in: " << ctx;
    EXPECT_EQ(One("SELECT count(*) FROM semantic_memory WHERE id = " + s), "1");
    decision_injected |= id.as_int64() == decision;
  }
  EXPECT_TRUE(decision_injected) << injections[0][1];

  // A prompt of only whitespace injects nothing and records nothing.
  {
    json::object blank = Event("UserPromptSubmit", "sess-1");
    blank["prompt"] = "  \n\t ";
    auto run = Hook("UserPromptSubmit", blank);
    EXPECT_FALSE(run.printed) << run.r.out;
    EXPECT_EQ(One("SELECT count(*) FROM context_injections"), "1");
  }

  // Stop: activity on the session.
  std::string updated_before =
      One("SELECT updated_at FROM work_sessions WHERE id = '" + session + "'");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto stop = Hook("Stop", Event("Stop", "sess-1"));
  EXPECT_FALSE(stop.printed);
  std::string updated_after =
      One("SELECT updated_at FROM work_sessions WHERE id = '" + session + "'");
  EXPECT_GT(updated_after, updated_before);
  EXPECT_EQ(One("SELECT status FROM work_sessions WHERE id = '" + session + "'"), "active");

  // SessionEnd: the session ends and its summary is queued.
  auto end = Hook("SessionEnd", Event("SessionEnd", "sess-1"));
  EXPECT_FALSE(end.printed);
  auto ended = Query("SELECT status, coalesce(ended_at, 'NULL') FROM work_sessions WHERE id = '" +
                     session + "'");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0][0], "ended");
  EXPECT_NE(ended[0][1], "NULL");
  auto jobs = Query(
      "SELECT state FROM jobs WHERE kind = 'session_summary' AND json_extract(payload,"
      " '$.session_id') = '" +
      session + "'");
  ASSERT_EQ(jobs.size(), 1u);
  if (mode_ == Mode::kLocal) {
    EXPECT_EQ(jobs[0][0], "queued");
  }

  // The summary job runs; the next session (a new id) starts from it.
  auto ran = RunCli({"jobs", "run-once", "--db", db_}, BaseEnv(), 60000);
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  if (mode_ == Mode::kLocal) {
    EXPECT_NE(ran.out.find("ran 1 job"), std::string::npos) << ran.out;
    std::string summary = One("SELECT summary FROM work_sessions WHERE id = '" + session + "'");
    EXPECT_FALSE(summary.empty());
  }
  auto next = Hook("SessionStart", Event("SessionStart", "sess-2"));
  ASSERT_TRUE(next.printed) << "the second session got no context; log: " << Log();
  std::string summary = One("SELECT summary FROM work_sessions WHERE id = '" + session + "'");
  ASSERT_FALSE(summary.empty());
  std::string first_line = summary.substr(0, summary.find('\n'));
  EXPECT_NE(Context(next).find("Last session"), std::string::npos) << Context(next);
  EXPECT_NE(Context(next).find(first_line), std::string::npos)
      << "summary \"" << first_line << "\" not in: " << Context(next);
  EXPECT_NE(Context(next).find("src/x.cpp"), std::string::npos)
      << "the summary lists the files touched: " << Context(next);
  EXPECT_EQ(One("SELECT count(*) FROM work_sessions WHERE external_id = 'sess-2' AND status ="
                " 'active'"),
            "1");
  EXPECT_EQ(One("SELECT count(*) FROM work_sessions"), "2");
}

TEST_F(HooksTest, EveryEventLocally) {
  RunSessionScenario();
  EXPECT_EQ(Log(), "") << "nothing failed, so nothing is logged";
}

TEST_F(HooksTest, EveryEventThroughServer) {
  StartServer();
  RunSessionScenario();
  EXPECT_EQ(Log(), "") << "nothing failed, so nothing is logged";
  EXPECT_FALSE(fs::exists(decoy_db_)) << "a hook ran locally instead of relaying to the server";
}

TEST_F(HooksTest, FallsBackToLocalWhenServerUnreachable) {
  std::string closed = "http://127.0.0.1:" + std::to_string(ClosedPort());
  auto run = Hook("SessionStart", json::serialize(Event("SessionStart", "sess-fallback")),
                  {{"DEVSTREAM_URL", closed}});
  EXPECT_FALSE(run.printed);
  EXPECT_EQ(One("SELECT count(*) FROM work_sessions WHERE external_id = 'sess-fallback'"), "1");
  // --url wins over the environment and falls back the same way.
  WriteText(repo_ + "/src/x.cpp", "int fallback_via_url_flag() { return 1; }\n");
  Hook("PostToolUse", json::serialize(Event("PostToolUse_Write", "sess-fallback")), {},
       {"--url", closed + "/"});
  EXPECT_EQ(LivePaths("src/x.cpp"), std::vector<std::string>{"src/x.cpp"});
}

// Something other than a DevStream server at the URL (no hook route, a
// proxy in front of a stopped server, a web page): the hook does the work
// locally. A DevStream server that fails the request is a logged failure.
TEST_F(HooksTest, FallsBackToLocalWhenTheUrlIsNotADevstreamServer) {
  struct Case {
    std::string name, response;
    bool local;
  };
  const std::vector<Case> cases = {
      {"404", HttpResponse(404, "Not Found", "<h1>no such page</h1>"), true},
      {"503", HttpResponse(503, "Service Unavailable", "upstream down"), true},
      {"200 not JSON", HttpResponse(200, "OK", "<html>hello</html>"), true},
      {"500", HttpResponse(500, "Internal Server Error", "{\"detail\":\"boom\"}"), false},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FakeHttpServer fake(c.response);
    ASSERT_GT(fake.port(), 0);
    std::string sid = "sess-fake-" + std::to_string(n++);
    size_t log_before = Log().size();
    auto run = Hook("SessionStart", json::serialize(Event("SessionStart", sid)),
                    {{"DEVSTREAM_URL", "http://127.0.0.1:" + std::to_string(fake.port())}});
    EXPECT_FALSE(run.printed) << run.r.out;
    EXPECT_EQ(fake.requests(), 1);
    std::string log = Log().substr(log_before);
    EXPECT_EQ(One("SELECT count(*) FROM work_sessions WHERE external_id = '" + sid + "'"),
              c.local ? "1" : "0")
        << log;
    if (!c.local) {
      EXPECT_NE(log.find("HTTP 500"), std::string::npos) << log;
    }
  }
}

// The largest file stored (max_chunks x 12 KB = 480 KB) is stored whole,
// locally and through the server (whose request body limit is 1 MiB, while
// Claude Code's event carries the content it wrote as well); a larger one is
// skipped both ways without a failure.
void HooksTest::RunLargeWrite() {
  const size_t limit = 40 * 12 * 1024;
  std::string big = SourceText("large", 1);
  while (big.size() + 200 < limit) big += SourceText("l" + std::to_string(big.size()), 1);
  big.resize(limit - 100);
  big += "\n";
  ASSERT_LE(big.size(), limit);
  WriteText(repo_ + "/src/large.cpp", big);
  json::object e = Event("PostToolUse_Write", "sess-big");
  e["tool_input"].as_object()["file_path"] = repo_ + "/src/large.cpp";
  e["tool_input"].as_object()["content"] = big;  // Claude Code sends the content it wrote
  e["tool_response"].as_object()["content"] = big;
  e["tool_response"].as_object()["filePath"] = repo_ + "/src/large.cpp";
  Hook("PostToolUse", e);
  EXPECT_EQ(Log(), "");
  EXPECT_GE(LivePaths("src/large.cpp").size(), big.size() / (12 * 1024));
  size_t stored = 0;
  for (const auto& row : CodeRows("src/large.cpp")) {
    if (row[2] == "0" && row[3] == "NULL") stored += std::stoul(row[4]);
  }
  EXPECT_EQ(stored, big.size());

  std::string huge = big + std::string(limit, 'h');
  WriteText(repo_ + "/src/huge.cpp", huge);
  e["tool_input"].as_object()["file_path"] = repo_ + "/src/huge.cpp";
  e["tool_input"].as_object()["content"] = huge;
  e["tool_response"].as_object()["content"] = huge;
  Hook("PostToolUse", e);
  EXPECT_EQ(Log(), "");
  EXPECT_TRUE(CodeRows("src/huge.cpp").empty());
}

TEST_F(HooksTest, LargeWriteLocally) {
  RunLargeWrite();
}

TEST_F(HooksTest, LargeWriteThroughServer) {
  StartServer();
  RunLargeWrite();
  EXPECT_FALSE(fs::exists(decoy_db_));
}

// A 2 MB prompt is within the input limit (8 MiB): it is answered (the
// search uses its beginning) within the budget, the same through the server
// as locally, and the injection records at most the searched prefix.
void HooksTest::RunLargePrompt() {
  WriteText(repo_ + "/src/x.cpp", "// retry backoff for the HTTP client\nint backoff();\n");
  Hook("PostToolUse", json::serialize(Event("PostToolUse_Write", "sess-big")));
  json::object e = Event("UserPromptSubmit", "sess-big");
  e["prompt"] = "retry backoff HTTP client " + std::string(2 << 20, 'z');
  auto run = Hook("UserPromptSubmit", e);
  EXPECT_LT(run.r.elapsed_ms, kDefaultBudgetMs);
  EXPECT_EQ(Log(), "");
  EXPECT_TRUE(run.printed) << "log: " << Log();
  EXPECT_NE(Context(run).find("retry backoff"), std::string::npos) << Context(run);
  auto rows = Query("SELECT length(query) FROM context_injections");
  EXPECT_EQ(rows.size(), 1u);
  for (const auto& row : rows) EXPECT_LE(std::stol(row[0]), 2000);
}

// A failing command with a large output (a build log) is an error memory
// holding the command and the start of the output, through the server too.
void HooksTest::RunLargeBashOutput() {
  json::object e = Event("PostToolUse_Bash", "sess-big");
  e["tool_input"].as_object()["command"] = "make -C build everything";
  json::object& resp = e["tool_response"].as_object();
  resp["stdout"] = "[1/900] compiling\n" + std::string(3 << 19, '.');  // 1.5 MB
  resp["stderr"] = "fatal: out of disk space";
  resp["exit_code"] = 2;
  auto run = Hook("PostToolUse", e);
  EXPECT_FALSE(run.printed);
  EXPECT_EQ(Log(), "");
  auto errors = Query("SELECT content FROM semantic_memory WHERE content_type = 'error'");
  ASSERT_EQ(errors.size(), 1u) << "log: " << Log();
  EXPECT_NE(errors[0][0].find("make -C build everything"), std::string::npos);
  EXPECT_NE(errors[0][0].find("[1/900] compiling"), std::string::npos);
  EXPECT_LT(errors[0][0].size(), 8000u) << "the output is cut";
}

TEST_F(HooksTest, LargeBashOutputLocally) {
  RunLargeBashOutput();
}

TEST_F(HooksTest, LargeBashOutputThroughServer) {
  StartServer();
  RunLargeBashOutput();
  EXPECT_FALSE(fs::exists(decoy_db_));
}

TEST_F(HooksTest, LargePromptLocally) {
  RunLargePrompt();
}

TEST_F(HooksTest, LargePromptThroughServer) {
  StartServer();
  RunLargePrompt();
  EXPECT_FALSE(fs::exists(decoy_db_));
}

// Each hostile input: exit 0, empty stdout (or a valid answer where the input
// is still usable), within the default budget, no sanitizer report, nothing
// stored where nothing should be, and a failure in the hook log.
TEST_F(HooksTest, HostileInputNeverBreaksTheAssistant) {
  // A database with a session and a memory, so "unchanged" means something
  // (a searching event first: the first search registers the embedding model).
  Hook("SessionStart", json::serialize(Event("SessionStart", "sess-base")));
  WriteText(repo_ + "/src/x.cpp", "int baseline() { return 0; }\n");
  Hook("PostToolUse", json::serialize(Event("PostToolUse_Write", "sess-base")));
  ASSERT_EQ(One("SELECT count(*) FROM semantic_memory"), "1");
  ASSERT_EQ(Log(), "");

  struct Case {
    std::string name, event, input;
    bool logged;            // a failure the log must mention
    bool unchanged = true;  // the database must be byte-for-byte the same
  };
  auto with = [&](const std::string& fixture, auto&& edit) {
    json::object e = Event(fixture, "sess-hostile");
    edit(e);
    return json::serialize(e);
  };
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "[";
  for (int i = 0; i < 200; ++i) deep += "]";
  std::string huge_prompt =
      with("UserPromptSubmit", [](json::object& e) { e["prompt"] = std::string(9 << 20, 'a'); });
  std::string invalid_utf8 = json::serialize(Event("UserPromptSubmit", "sess-hostile"));
  ReplaceAll(invalid_utf8, "thirty seconds", "thirty \xff\xfe seconds");

  std::vector<Case> cases = {
      {"malformed JSON", "SessionStart", "{\"session_id\": \"sess-hostile\", \"cwd\": ", true},
      {"empty stdin", "SessionStart", "", true},
      {"whitespace only", "UserPromptSubmit", " \n\t\n", true},
      {"JSON array", "SessionStart", "[{\"session_id\": \"sess-hostile\"}]", true},
      {"JSON string", "Stop", "\"Stop\"", true},
      {"JSON null", "SessionEnd", "null", true},
      {"nested 200 deep", "PreToolUse",
       "{\"session_id\": \"sess-hostile\", \"tool_input\": " + deep + "}", true},
      {"trailing garbage", "Stop",
       json::serialize(Event("Stop", "sess-hostile")) + "{\"second\": true}", true},
      {"9 MB prompt", "UserPromptSubmit", huge_prompt, true},
      {"invalid UTF-8", "UserPromptSubmit", invalid_utf8, true},
      {"no session_id", "SessionStart",
       with("SessionStart", [](json::object& e) { e.erase("session_id"); }), false},
      {"session_id a number", "SessionStart",
       with("SessionStart", [](json::object& e) { e["session_id"] = 42; }), false},
      {"session_id 300 chars", "Stop",
       with("Stop", [](json::object& e) { e["session_id"] = std::string(300, 's'); }), false},
      {"no prompt", "UserPromptSubmit",
       with("UserPromptSubmit", [](json::object& e) { e.erase("prompt"); }), false},
      {"prompt an array", "UserPromptSubmit",
       with("UserPromptSubmit",
            [](json::object& e) {
              e["prompt"] = json::array{"a", "b"};
            }),
       false},
      {"tool_input a string", "PostToolUse",
       with("PostToolUse_Write", [&](json::object& e) { e["tool_input"] = repo_ + "/src/x.cpp"; }),
       false},
      {"tool_input null", "PreToolUse",
       with("PreToolUse", [](json::object& e) { e["tool_input"] = nullptr; }), false},
      {"file_path a number", "PostToolUse",
       with("PostToolUse_Write",
            [](json::object& e) { e["tool_input"].as_object()["file_path"] = 7; }),
       false},
      {"file_path a directory", "PostToolUse",
       with("PostToolUse_Write",
            [&](json::object& e) { e["tool_input"].as_object()["file_path"] = repo_ + "/src"; }),
       false},
      {"file_path missing file", "PostToolUse",
       with("PostToolUse_Write",
            [&](json::object& e) {
              e["tool_input"].as_object()["file_path"] = repo_ + "/nope.cpp";
            }),
       false},
      {"file_path /dev/zero", "PostToolUse",
       with("PostToolUse_Write",
            [](json::object& e) { e["tool_input"].as_object()["file_path"] = "/dev/zero"; }),
       false},
      {"tool_name an object", "PostToolUse",
       with("PostToolUse_Write", [](json::object& e) { e["tool_name"] = json::object{}; }), false},
      {"Bash exit code as string", "PostToolUse",
       with("PostToolUse_Bash",
            [](json::object& e) { e["tool_response"].as_object()["exit_code"] = "1"; }),
       false},
      {"Bash tool_response a string", "PostToolUse",
       with("PostToolUse_Bash", [](json::object& e) { e["tool_response"] = "exit 1"; }), false},
      {"Bash exit code, tool_input missing", "PostToolUse",
       with("PostToolUse_Bash",
            [](json::object& e) {
              e["session_id"] = "sess-stores";
              e.erase("tool_input");
              e["tool_response"].as_object()["exit_code"] = 1;
            }),
       false, false},
      {"failure without error text", "PostToolUseFailure",
       with("PostToolUseFailure",
            [](json::object& e) {
              e["session_id"] = "sess-stores";
              e["error"] = 404;
              e["tool_input"] = json::array{};
            }),
       false, false},
      {"unknown field types everywhere", "Stop",
       "{\"session_id\": [], \"cwd\": {}, \"stop_hook_active\": \"yes\", \"transcript_path\": 1}",
       false},
      {"cwd a number", "SessionEnd", with("SessionEnd", [](json::object& e) { e["cwd"] = 17; }),
       false},
      {"cwd does not exist", "SessionEnd",
       with("SessionEnd", [&](json::object& e) { e["cwd"] = dir_ + "/gone/away"; }), false},
      {"NUL in prompt", "UserPromptSubmit",
       with("UserPromptSubmit",
            [](json::object& e) {
              e["session_id"] = "sess-stores";
              e["prompt"] = std::string("baseline\0retry", 14);
            }),
       false, false},
      {"unknown event", "Frobnicate", json::serialize(Event("Stop", "sess-hostile")), true},
      {"event in lower case", "sessionstart",
       json::serialize(Event("SessionStart", "sess-hostile")), true},
  };

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string dump_before = DumpDatabase(db_);
    size_t log_before = Log().size();
    CliOptions o;
    o.env = BaseEnv();  // the default budget (4000 ms)
    o.input = c.input;
    o.cwd = repo_;
    o.timeout_ms = 60000;
    HookRun run;
    run.r = RunCliWith({"hook", c.event, "--db", db_}, o);
    CheckContract(c.event, run);
    EXPECT_LT(run.r.elapsed_ms, kDefaultBudgetMs);
    std::string log = Log().substr(std::min(log_before, Log().size()));
    EXPECT_EQ(log.find("gave up"), std::string::npos) << log;
    if (c.logged) {
      EXPECT_FALSE(run.printed) << run.r.out;
      EXPECT_NE(log.find("hook " + c.event + ":"), std::string::npos)
          << "failure not logged; log: " << log;
    }
    if (c.unchanged) {
      EXPECT_EQ(DumpDatabase(db_), dump_before) << "stdout: " << run.r.out << "\nlog: " << log;
    }
  }
  // Nothing ever landed in a project other than the repository's.
  EXPECT_EQ(One("SELECT group_concat(name) FROM projects"), "repo");
  // Sessions: the baseline's and the one of the cases that store something;
  // none for the session id of the cases that must change nothing.
  EXPECT_EQ(One("SELECT group_concat(external_id) FROM (SELECT external_id FROM work_sessions"
                " ORDER BY external_id)"),
            "sess-base,sess-stores");
  EXPECT_EQ(One("SELECT status FROM work_sessions WHERE external_id = 'sess-stores'"), "active");
  // What the usable ones stored: an error with what little it had (a
  // failure without any error text stores nothing).
  auto errors =
      Query("SELECT content FROM semantic_memory WHERE content_type = 'error' ORDER BY id");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0][0].find("exit code 1"), std::string::npos) << errors[0][0];
  EXPECT_NE(errors[0][0].find("x.cpp"), std::string::npos) << errors[0][0];
}

// Claude Code reads exit code 2 as "block": a PreToolUse hook exiting 2
// blocks the edit, a Stop hook exiting 2 keeps the assistant going. A hook
// command line devstream does not understand (a flag from another version,
// a typo in settings.json) must not do that either.
TEST_F(HooksTest, UnusableCommandLineStillExitsZero) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"hook", "PreToolUse", "--no-such-flag", "--db", db_},
           {"hook", "Stop", "unexpected-extra-argument", "--db", db_},
           {"hook", "PreToolUse", "--db"},
           {"hook"},
       }) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    SCOPED_TRACE(line);
    CliOptions o;
    o.env = BaseEnv();
    o.input = json::serialize(Event("PreToolUse", "sess-cli"));
    o.cwd = repo_;
    HookRun run;
    run.r = RunCliWith(args, o);
    CheckContract(args.size() > 1 ? args[1] : "", run);
    EXPECT_FALSE(run.printed) << run.r.out;
  }
}

// Claude Code runs the hooks of parallel tool calls at the same time, also
// on a database that does not exist yet: every write is stored, in one
// session.
TEST_F(HooksTest, ConcurrentHooksOnAFreshDatabase) {
  constexpr int kHooks = 8;
  std::vector<CommandResult> results(kHooks);
  std::vector<std::thread> threads;
  for (int i = 0; i < kHooks; ++i) {
    std::string rel = "src/par" + std::to_string(i) + ".cpp";
    WriteText(repo_ + "/" + rel, "int parallel_" + std::to_string(i) + "() { return 1; }\n");
    json::object e = Event("PostToolUse_Write", "sess-parallel");
    e["tool_input"].as_object()["file_path"] = repo_ + "/" + rel;
    CliOptions o;
    o.env = BaseEnv();
    SetEnv(o.env, "DEVSTREAM_HOOK_TIMEOUT_MS", kFunctionalBudgetMs);
    o.input = json::serialize(e);
    o.cwd = repo_;
    o.timeout_ms = 60000;
    threads.emplace_back([&results, i, o, this] {
      results[i] = RunCliWith({"hook", "PostToolUse", "--db", db_}, o);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kHooks; ++i) {
    HookRun run{results[i], {}, false};
    CheckContract("PostToolUse", run);
    EXPECT_FALSE(run.printed);
  }
  EXPECT_EQ(Log(), "");
  EXPECT_EQ(LivePaths("src/par").size(), static_cast<size_t>(kHooks));
  EXPECT_EQ(One("SELECT count(*) FROM work_sessions WHERE external_id = 'sess-parallel'"), "1");
  EXPECT_EQ(One("SELECT count(DISTINCT session_id) FROM semantic_memory"), "1");
}

// The working directory is the fallback when the event has no cwd.
TEST_F(HooksTest, MissingCwdUsesTheProcessDirectory) {
  json::object e = Event("SessionStart", "sess-nocwd");
  e.erase("cwd");
  Hook("SessionStart", json::serialize(e), {}, {}, repo_ + "/src");
  EXPECT_EQ(One("SELECT p.name FROM work_sessions s JOIN projects p ON p.id = s.project_id"
                " WHERE s.external_id = 'sess-nocwd'"),
            "repo");
}

// A database that cannot be opened is a logged failure, not an error exit.
TEST_F(HooksTest, UnusableDatabaseIsLogged) {
  WriteText(dir_ + "/a-file", "not a directory\n");
  CliOptions o;
  o.env = BaseEnv();
  o.input = json::serialize(Event("SessionStart", "sess-nodb"));
  o.cwd = repo_;
  HookRun run;
  run.r = RunCliWith({"hook", "SessionStart", "--db", dir_ + "/a-file/sub.db"}, o);
  CheckContract("SessionStart", run);
  EXPECT_FALSE(run.printed);
  EXPECT_NE(Log().find("hook SessionStart:"), std::string::npos) << Log();
}

// The hard budget ends a hook that cannot finish: exit 0, no output, logged.
TEST_F(HooksTest, BudgetEndsAHookStuckOnAServerThatNeverAnswers) {
  SilentListener silent;
  ASSERT_GT(silent.port(), 0);
  CliOptions o;
  o.env = BaseEnv();
  SetEnv(o.env, "DEVSTREAM_HOOK_TIMEOUT_MS", "100");
  SetEnv(o.env, "DEVSTREAM_URL", "http://127.0.0.1:" + std::to_string(silent.port()));
  o.input = json::serialize(Event("UserPromptSubmit", "sess-slow"));
  o.cwd = repo_;
  o.timeout_ms = 20000;
  HookRun run;
  run.r = RunCliWith({"hook", "UserPromptSubmit", "--db", db_}, o);
  CheckContract("UserPromptSubmit", run);
  EXPECT_FALSE(run.printed) << run.r.out;
  EXPECT_LT(run.r.elapsed_ms, 2000);
  std::string log = Log();
  // Whichever ends first: the hook's budget, or the relay's own timeout.
  EXPECT_TRUE(log.find("gave up") != std::string::npos ||
              log.find("timed out after 100 ms") != std::string::npos)
      << log;
  // It gave up on the server: nothing was done locally either.
  EXPECT_FALSE(fs::exists(db_));
}

TEST_F(HooksTest, BudgetEndsAHookWhoseInputNeverEnds) {
  CliOptions o;
  o.env = BaseEnv();
  SetEnv(o.env, "DEVSTREAM_HOOK_TIMEOUT_MS", "100");
  o.input = "{\"session_id\": \"sess-open\", ";
  o.close_stdin = false;  // the writer never closes stdin
  o.cwd = repo_;
  o.timeout_ms = 20000;
  HookRun run;
  run.r = RunCliWith({"hook", "SessionStart", "--db", db_}, o);
  CheckContract("SessionStart", run);
  EXPECT_FALSE(run.printed);
  EXPECT_LT(run.r.elapsed_ms, 2000);
  EXPECT_NE(Log().find("hook SessionStart: gave up after the 100 ms budget"), std::string::npos)
      << Log();
}

}  // namespace
}  // namespace ds::itest
