// Authorization and secrecy on the real server with security.auth_enabled
// (issue #9):
//   - the authz matrix: every operation of src/api/openapi.json (read at test
//     time, so a new route without an entry here fails) × no key / read /
//     write / admin / a key bound to another project, each cell asserting its
//     class — 401, 403, 404 (another project's resource), or allowed (2xx or
//     a 4xx that is not 401/403/404) — with real ids; plus /mcp initialize per
//     key, a write tool called with a read key (isError), and /metrics;
//   - secrets: full API keys (valid, revoked, wrong), security.secret_key and
//     the secrets a memory carried (see src/memory/redaction.h) appear in no
//     response body and not in the server's log, and the stored memory is
//     redacted;
//   - /mcp Origin checks against DNS rebinding: a foreign Origin is refused
//     with 403 (also one allowed for REST CORS only, and look-alikes of
//     loopback); no Origin, loopback origins and mcp.allowed_origins work.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "harness.h"

namespace ds::itest {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

enum class Want { kAllowed, k401, k403, k404 };

const char* Name(Want w) {
  switch (w) {
    case Want::kAllowed:
      return "allowed";
    case Want::k401:
      return "401";
    case Want::k403:
      return "403";
    case Want::k404:
      return "404";
  }
  return "?";
}

bool Matches(Want w, int status) {
  switch (w) {
    case Want::kAllowed:
      return (status >= 200 && status < 300) ||
             (status >= 400 && status < 500 && status != 401 && status != 403 && status != 404);
    case Want::k401:
      return status == 401;
    case Want::k403:
      return status == 403;
    case Want::k404:
      return status == 404;
  }
  return false;
}

std::string ReadSource(const std::string& rel) {
  std::ifstream in(std::string(DEVSTREAM_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The ids one caller's requests act on, all in project alpha.
struct World {
  std::string project, plan, plan2, phase, phase2, a, b, c, m1, m2, session, job;
};

// How the matrix calls an operation: query, body and which ids fill its path.
struct Sample {
  std::string query;                                 // without "?"; "{plan}" is the world's plan
  std::function<std::string(const World&)> body;     // "" for none
  std::function<std::string(const World&)> id = {};  // {id} (default: by path prefix)
  bool names_alpha = true;                           // a key bound to another project must get 404
};

const char* kInit =
    R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",)"
    R"("capabilities":{},"clientInfo":{"name":"authz","version":"1"}}})";

std::map<std::string, Sample> Samples() {
  auto body = [](std::string s) { return [s](const World&) { return s; }; };
  auto none = body("");
  std::map<std::string, Sample> m;
  m["listProjects"] = {"", none, {}, false};
  m["createProject"] = {"", body(R"({"name":"authz-made"})"), {}, false};
  m["getProject"] = {"", none};
  m["createPlan"] = {"", body(R"({"title":"Matrix plan","project":"alpha"})")};
  m["listPlans"] = {"project=alpha", none};
  m["getPlan"] = {"", none};
  m["updatePlan"] = {"", body(R"({"title":"Renamed"})")};
  m["deletePlan"] = {"", none, [](const World& w) { return w.plan2; }};
  m["getPlanGraph"] = {"", none};
  m["createPhase"] = {"", body(R"({"name":"Extra"})")};
  m["listPhases"] = {"", none};
  m["getPhase"] = {"", none};
  m["updatePhase"] = {"", body(R"({"name":"Renamed"})")};
  m["deletePhase"] = {"", none, [](const World& w) { return w.phase2; }};
  m["createPhaseTask"] = {"", body(R"({"title":"Extra task"})")};
  m["listPhaseTasks"] = {"", none};
  m["createTask"] = {
      "", [](const World& w) { return R"({"title":"Loose","phase_id":")" + w.phase + R"("})"; }};
  m["listTasks"] = {"plan_id={plan}", none};
  m["listReadyTasks"] = {"plan_id={plan}", none};
  m["claimTask"] = {
      "", [](const World& w) { return R"({"agent":"authz","plan_id":")" + w.plan + R"("})"; }};
  m["getTask"] = {"", none};
  m["updateTask"] = {"", body(R"({"notes":"touched"})")};
  m["deleteTask"] = {"", none, [](const World& w) { return w.c; }};
  // b, not a: the claim above leased a, and only its owner may move it.
  m["transitionTask"] = {"", body(R"({"to":"blocked","note":"matrix"})"),
                         [](const World& w) { return w.b; }};
  m["heartbeatTask"] = {"", body(R"({"agent":"authz"})")};
  m["addTaskDependency"] = {"",
                            [](const World& w) { return R"({"depends_on":")" + w.c + R"("})"; }};
  m["removeTaskDependency"] = {"", none};
  m["listTaskEvents"] = {"", none};
  m["storeMemory"] = {"", body(R"({"content":"matrix note","content_type":"context",)"
                               R"("project":"alpha"})")};
  m["listMemories"] = {"project=alpha", none};
  m["storeMemories"] = {"", body(R"({"memories":[{"content":"batch note",)"
                                 R"("content_type":"context","project":"alpha"}]})")};
  m["getMemoryStats"] = {"project=alpha", none};
  m["getMemory"] = {"", none};
  m["updateMemory"] = {"", body(R"({"pinned":true})")};
  m["deleteMemory"] = {"", none, [](const World& w) { return w.m2; }};
  m["forgetMemory"] = {"", none};
  m["searchMemories"] = {"", body(R"({"query":"matrix","project":"alpha"})")};
  m["assembleContext"] = {"", body(R"({"query":"matrix","project":"alpha"})")};
  m["listJobs"] = {"", none, {}, false};
  m["enqueueJob"] = {"", body(R"({"kind":"rollup"})"), {}, false};
  m["getJob"] = {"", none, {}, false};
  m["retryJob"] = {"", none, {}, false};
  m["startSession"] = {"", body(R"({"project":"alpha","agent":"authz"})")};
  m["getLatestSession"] = {"project=alpha", none};
  m["getSession"] = {"", none};
  m["endSession"] = {"", body("{}")};
  m["getHealth"] = {"", none, {}, false};
  m["getLiveness"] = {"", none, {}, false};
  m["getReadiness"] = {"", none, {}, false};
  m["getVersion"] = {"", none, {}, false};
  m["getOpenApiDocument"] = {"", none, {}, false};
  m["mcpMessage"] = {"", body(kInit), {}, false};
  m["mcpEndSession"] = {"", none, {}, false};
  m["runHook"] = {"", body(R"({"event":"SessionStart","project":"alpha","input":{)"
                           R"("session_id":"matrix","hook_event_name":"SessionStart",)"
                           R"("source":"startup","cwd":"/tmp"}})")};
  m["metrics"] = {"", none, {}, false};
  return m;
}

class AuthzTest : public ::testing::Test {
 protected:
  static constexpr const char* kSecretKey = "sk-server-signing-0123456789abcdef0123456789abcdef";

  void SetUp() override {
    dir_ = TempDir();
    db_ = dir_ + "/authz.db";
    ASSERT_EQ(RunCli({"migrate", "up", "--db", db_}).exit_code, 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(EnvVars extra = {}) {
    EnvVars env = {{"DEVSTREAM_AUTH_ENABLED", "true"},
                   {"DEVSTREAM_SERVICE_MODE", "api"},
                   {"DEVSTREAM_METRICS_ALLOWED", "10.9.9.9"},
                   {"DEVSTREAM_SECRET_KEY", kSecretKey},
                   {"DEVSTREAM_LOG_LEVEL", "debug"}};
    env.insert(env.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(db_, std::vector<std::string>{}, env);
    ASSERT_TRUE(server_->Start());
  }

  std::string CreateKey(const std::string& name, const std::string& scopes,
                        const std::string& project = "") {
    std::string output;
    std::string key = CreateApiKey(db_, name, scopes, project, &output);
    bodies_.push_back(output);  // the CLI prints the key once: that is expected
    cli_outputs_ = bodies_.size();
    return key;
  }

  // Every response goes through here, so its body can be scanned for secrets.
  HttpResult Call(const std::string& method, const std::string& target, const std::string& key,
                  const std::string& body = "", Headers headers = {}) {
    if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
    if (target == "/mcp") {
      headers.emplace_back("Accept", "application/json, text/event-stream");
      headers.emplace_back("MCP-Protocol-Version", "2025-06-18");
    }
    auto r = Http(server_->port(), method, target, body, headers, !body.empty());
    bodies_.push_back(r.body);
    for (const auto& [k, v] : r.headers) bodies_.push_back(k + ": " + v);
    return r;
  }

  static std::string Id(const HttpResult& r) {
    auto v = r.Json();
    if (!v.is_object() || !v.as_object().contains("id")) return "";
    if (v.at("id").is_int64()) return std::to_string(v.at("id").as_int64());
    return std::string(v.at("id").as_string());
  }

  // Plans, phases, tasks (b depends on a), memories, a session and a job in
  // project alpha, made with an unbound admin key.
  World MakeWorld(const std::string& admin, const std::string& tag) {
    World w;
    HttpResult last;
    auto post = [&](const std::string& path, const std::string& body) {
      last = Call("POST", path, admin, body);
      EXPECT_TRUE(last.status == 201 || last.status == 200) << path << ": " << last.body;
      return Id(last);
    };
    w.plan = post("/api/v1/plans", R"({"title":"Alpha )" + tag + R"(","project":"alpha"})");
    if (last.Json().is_object()) w.project = std::string(last.Json().at("project_id").as_string());
    w.plan2 = post("/api/v1/plans", R"({"title":"Doomed )" + tag + R"(","project":"alpha"})");
    w.phase = post("/api/v1/plans/" + w.plan + "/phases", R"({"name":"Build"})");
    w.phase2 = post("/api/v1/plans/" + w.plan + "/phases", R"({"name":"Doomed"})");
    w.a = post("/api/v1/phases/" + w.phase + "/tasks", R"({"title":"A"})");
    w.b = post("/api/v1/phases/" + w.phase + "/tasks",
               R"({"title":"B","depends_on":[")" + w.a + R"("]})");
    w.c = post("/api/v1/phases/" + w.phase + "/tasks", R"({"title":"C"})");
    // (Distinct contents: an identical memory would be deduplicated.)
    w.m1 = post("/api/v1/memories", R"({"content":"alpha matrix memory one )" + tag +
                                        R"(","content_type":"context","project":"alpha"})");
    w.m2 = post("/api/v1/memories", R"({"content":"alpha matrix memory two )" + tag +
                                        R"(","content_type":"context","project":"alpha"})");
    // An ended session (for sessions/latest) and an open one.
    std::string ended = post("/api/v1/sessions", R"({"project":"alpha","agent":"seed"})");
    post("/api/v1/sessions/" + ended + "/end", "{}");
    w.session = post("/api/v1/sessions", R"({"project":"alpha","agent":"seed"})");
    w.job = post("/api/v1/jobs", R"({"kind":"rollup","dedup_key":"matrix-)" + tag + R"("})");
    return w;
  }

  static std::string FillPath(const std::string& path, const World& w, const Sample& s,
                              const std::string& operation) {
    std::string out = path;
    auto put = [&](const std::string& param, const std::string& value) {
      if (auto p = out.find(param); p != std::string::npos) out.replace(p, param.size(), value);
    };
    std::string id;
    if (s.id) {
      id = s.id(w);
    } else if (path.rfind("/api/v1/projects/", 0) == 0) {
      id = w.project;
    } else if (path.rfind("/api/v1/plans/", 0) == 0) {
      id = w.plan;
    } else if (path.rfind("/api/v1/phases/", 0) == 0) {
      id = w.phase;
    } else if (path.rfind("/api/v1/tasks/", 0) == 0) {
      id = operation == "addTaskDependency" ? w.b
                                            : (operation == "removeTaskDependency" ? w.b : w.a);
    } else if (path.rfind("/api/v1/memories/", 0) == 0) {
      id = w.m1;
    } else if (path.rfind("/api/v1/jobs/", 0) == 0) {
      id = w.job;
    } else if (path.rfind("/api/v1/sessions/", 0) == 0) {
      id = w.session;
    }
    put("{id}", id);
    put("{dep}", w.a);
    put("{event}", "SessionStart");
    return out;
  }

  struct Op {
    std::string method, path, operation, scope;
  };
  // The operations of the OpenAPI document, DELETEs last (they remove what
  // the others use).
  static std::vector<Op> Operations() {
    json::value spec = json::parse(ReadSource("src/api/openapi.json"));
    std::vector<Op> ops;
    for (const auto& [path, item] : spec.at("paths").as_object()) {
      for (const auto& [method_key, op] : item.as_object()) {
        if (!op.is_object() || !op.as_object().contains("operationId")) continue;
        std::string method(method_key);
        std::transform(method.begin(), method.end(), method.begin(), ::toupper);
        const json::value* scope = op.as_object().if_contains("x-devstream-scope");
        ops.push_back({method, std::string(path), std::string(op.at("operationId").as_string()),
                       scope && scope->is_string() ? std::string(scope->as_string()) : ""});
      }
    }
    std::stable_partition(ops.begin(), ops.end(), [](const Op& o) { return o.method != "DELETE"; });
    return ops;
  }

  std::string dir_, db_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<std::string> bodies_;
  size_t cli_outputs_ = 0;
};

TEST_F(AuthzTest, EveryRouteTimesEveryCaller) {
  const std::string admin = CreateKey("admin", "admin");
  const std::string reader = CreateKey("reader", "read");
  const std::string writer = CreateKey("writer", "write");
  const std::string other = CreateKey("beta-bot", "write", "beta");
  StartServer();
  if (HasFatalFailure()) return;

  // The caller's own MCP session, for DELETE /mcp.
  std::map<std::string, std::string> mcp_session;
  struct Caller {
    std::string name, key;
    World world;
  };
  World shared = MakeWorld(admin, "shared");
  std::vector<Caller> callers = {{"none", "", shared},
                                 {"read", reader, shared},
                                 {"other-project", other, shared},
                                 {"write", writer, MakeWorld(admin, "write")},
                                 {"admin", admin, MakeWorld(admin, "admin")}};
  if (HasFailure()) return;

  auto samples = Samples();
  auto ops = Operations();
  ASSERT_GT(ops.size(), 50u);
  std::set<std::string> seen;
  int cells = 0, allowed = 0, allowed_2xx = 0;
  std::string allowed_4xx;  // allowed cells answered with a (validation or state) 4xx
  for (const auto& op : ops) {
    seen.insert(op.operation);
    auto it = samples.find(op.operation);
    if (it == samples.end()) {
      ADD_FAILURE() << "no authz matrix entry for " << op.method << " " << op.path << " ("
                    << op.operation << "): add one to Samples() in authz_matrix_test.cpp";
      continue;
    }
    const Sample& s = it->second;
    bool is_jobs = op.path.rfind("/api/v1/jobs", 0) == 0;
    // The scope the document names must be the one the server enforces.
    EXPECT_TRUE(op.scope.empty() || op.scope == "read" || op.scope == "write" ||
                op.scope == "admin")
        << op.operation << " x-devstream-scope " << op.scope;
    EXPECT_EQ(op.scope == "admin", is_jobs) << op.operation << " scope " << op.scope;
    for (const auto& caller : callers) {
      Want want = Want::kAllowed;
      if (op.operation == "metrics") {
        // An unbound admin key, or an allowed address (not loopback here).
        want = caller.name == "admin" ? Want::kAllowed : Want::k403;
      } else if (op.scope.empty()) {
        want = Want::kAllowed;  // public
      } else if (caller.name == "none") {
        want = Want::k401;
      } else if (op.scope == "admin") {
        want = caller.name == "admin" ? Want::kAllowed : Want::k403;
      } else if (op.scope == "write" && caller.name == "read") {
        want = Want::k403;
      } else if (caller.name == "other-project") {
        if (op.operation == "createProject") {
          want = Want::k403;
        } else if (s.names_alpha) {
          want = Want::k404;
        }
      }
      std::string target = FillPath(op.path, caller.world, s, op.operation);
      if (!s.query.empty()) {
        std::string q = s.query;
        if (auto p = q.find("{plan}"); p != std::string::npos) q.replace(p, 6, caller.world.plan);
        target += "?" + q;
      }
      Headers extra;
      if (op.operation == "mcpEndSession") {
        extra.emplace_back("Mcp-Session-Id", mcp_session[caller.name]);
      }
      auto r = Call(op.method, target, caller.key, s.body(caller.world), extra);
      ++cells;
      if (want == Want::kAllowed) {
        ++allowed;
        if (r.status >= 200 && r.status < 300) {
          ++allowed_2xx;
        } else {
          allowed_4xx += " " + op.operation + "/" + caller.name + "=" + std::to_string(r.status);
        }
      }
      EXPECT_TRUE(Matches(want, r.status))
          << op.method << " " << op.path << " (" << op.operation << ") as " << caller.name
          << ": want " << Name(want) << ", got " << r.status << " " << r.body.substr(0, 300);
      EXPECT_LT(r.status, 500) << op.operation << " as " << caller.name;
      if (r.status == 401) {
        EXPECT_NE(r.Header("www-authenticate").find("Bearer"), std::string::npos) << op.operation;
      }
      if (r.status >= 400 && op.path != "/mcp") {
        EXPECT_EQ(r.Header("content-type"), "application/problem+json")
            << op.operation << " as " << caller.name << ": " << r.status;
      }
      if (op.operation == "mcpMessage" && r.status == 200) {
        mcp_session[caller.name] = r.Header("mcp-session-id");
        EXPECT_FALSE(mcp_session[caller.name].empty()) << caller.name;
      }
    }
  }
  // A matrix entry without an operation is stale.
  for (const auto& [name, sample] : samples) {
    EXPECT_TRUE(seen.count(name)) << "matrix entry " << name << " names no OpenAPI operation";
  }

  // MCP tool calls: writing needs write; another project's things do not exist.
  auto tool = [&](const std::string& key, const std::string& session, const std::string& name,
                  const std::string& args) {
    Headers h;
    if (!session.empty()) h.emplace_back("Mcp-Session-Id", session);
    return Call("POST", "/mcp", key,
                R"({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":")" + name +
                    R"(","arguments":)" + args + "}}",
                h);
  };
  const std::string plan_args = R"({"title":"Via MCP","project":"alpha"})";
  for (const auto& [who, key, want_error] : std::vector<std::tuple<std::string, std::string, bool>>{
           {"read", reader, true}, {"write", writer, false}, {"admin", admin, false}}) {
    auto r = tool(key, "", "devstream_create_plan", plan_args);
    ++cells;
    ASSERT_EQ(r.status, 200) << who << ": " << r.body;
    auto result = r.Json().at("result");
    EXPECT_EQ(result.at("isError").as_bool(), want_error) << who << ": " << r.body;
    if (want_error) {
      EXPECT_NE(r.body.find("needs write"), std::string::npos) << r.body;
    }
  }
  auto foreign = tool(other, "", "devstream_list_plans", R"({"project":"alpha"})");
  ++cells;
  ASSERT_EQ(foreign.status, 200) << foreign.body;
  EXPECT_TRUE(foreign.Json().at("result").at("isError").as_bool()) << foreign.body;
  auto foreign_task = tool(other, "", "devstream_update_task",
                           R"({"task_id":")" + shared.a + R"(","status":"active"})");
  ++cells;
  ASSERT_EQ(foreign_task.status, 200) << foreign_task.body;
  EXPECT_TRUE(foreign_task.Json().at("result").at("isError").as_bool()) << foreign_task.body;
  // The shared world was only looked at: the unauthorised callers changed nothing.
  auto a = Call("GET", "/api/v1/tasks/" + shared.a, admin);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.Json().at("status").as_string(), "pending") << a.body;
  EXPECT_EQ(Call("GET", "/api/v1/plans/" + shared.plan2, admin).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/memories/" + shared.m2, admin).status, 200);
  EXPECT_EQ(QueryDatabase(db_, "SELECT count(*) FROM projects WHERE name = 'authz-made'")[0][0],
            "1")
      << "exactly one caller (write or admin) may create the project; the second gets 409";
  // The samples are real requests: nearly every allowed cell succeeds.
  EXPECT_GE(allowed_2xx * 10, allowed * 9) << "allowed but refused:" << allowed_4xx;
  std::cout << "[ authz ] " << ops.size() << " operations x " << callers.size() << " callers; "
            << cells << " cells (" << allowed << " allowed, " << allowed_2xx
            << " of them 2xx; 4xx:" << allowed_4xx << ")\n";
}

TEST_F(AuthzTest, SecretsNeverReachLogsOrResponses) {
  const std::string admin = CreateKey("admin", "admin");
  const std::string reader = CreateKey("reader", "read");
  const std::string doomed = CreateKey("doomed", "write");
  const std::string bound = CreateKey("beta-bot", "write", "beta");
  ASSERT_EQ(RunCli({"apikey", "revoke", "doomed", "--db", db_}).exit_code, 0);
  StartServer({{"DEVSTREAM_CORS_ORIGINS", "https://app.example"}});
  if (HasFatalFailure()) return;
  const size_t first_http = bodies_.size();

  // A key that looks right but is not one: same prefix as a real one.
  std::string wrong = admin.substr(0, 12) + std::string(admin.size() - 12, '0');
  for (const auto& key : {doomed, wrong, std::string("dsk_short"), admin + "x", "Basic " + admin}) {
    for (const char* path : {"/api/v1/plans", "/mcp", "/metrics", "/health"}) {
      auto r = Call(path == std::string("/mcp") ? "POST" : "GET", path, key,
                    path == std::string("/mcp") ? kInit : "");
      EXPECT_EQ(r.status, 401) << path << " " << r.body;
    }
  }
  // Keys in headers and bodies where they do not belong are not echoed back
  // either. (A key put in the URL is not covered: paths are echoed in
  // problem+json "instance" and logged, like any URL.)
  Call("POST", "/api/v1/plans", reader, R"({"title":")" + admin + R"("})");
  Call("POST", "/api/v1/plans", admin, R"({"title":")" + admin + R"(","priority":"x"})");
  Call("GET", "/api/v1/plans", "", "", {{"Authorization", "Bearer " + admin + " " + admin}});
  Call("GET", "/api/v1/plans", "", "", {{"X-Api-Key", admin}});

  // A memory full of secrets: stored and returned redacted.
  const std::vector<std::string> secrets = {
      "AKIAIOSFODNN7EXAMPLE",
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
      "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
      "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
      "AIzaSyA-1234567890abcdefghijklmnopqrstu",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_"
      "XgL0n3I9PlFUP0THsR8U",
      "hunter2-correct-horse-battery",
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
  };
  std::string content =
      "Deploy notes. aws_access_key_id " + secrets[0] + "\naws_secret_access_key = " + secrets[1] +
      "\nOPENAI_API_KEY=" + secrets[2] + "\ngithub token " + secrets[3] + "\nslack " + secrets[4] +
      "\ngoogle " + secrets[5] + "\njwt " + secrets[6] + "\npassword: " + secrets[7] +
      "\n-----BEGIN PRIVATE KEY-----\n" + secrets[8] + "\n-----END PRIVATE KEY-----\nend.";
  auto stored = Call("POST", "/api/v1/memories", admin,
                     json::serialize(json::object{
                         {"content", content}, {"content_type", "context"}, {"project", "alpha"}}));
  ASSERT_EQ(stored.status, 201) << stored.body;
  std::string memory_id = Id(stored);
  auto got = Call("GET", "/api/v1/memories/" + memory_id, admin);
  ASSERT_EQ(got.status, 200);
  std::string returned(got.Json().at("content").as_string());
  EXPECT_NE(returned.find("[REDACTED]"), std::string::npos) << returned;
  EXPECT_NE(returned.find("Deploy notes."), std::string::npos) << returned;
  Call("POST", "/api/v1/search", admin,
       R"({"query":"deploy notes github token","project":"alpha"})");
  Call("POST", "/api/v1/context", admin, R"({"query":"deploy notes","project":"alpha"})");
  Call(
      "POST", "/mcp", admin,
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"devstream_search_memory",)"
      R"("arguments":{"query":"deploy notes","project":"alpha"}}})");
  // An update carrying a secret is redacted too; so is a batch.
  Call("PATCH", "/api/v1/memories/" + memory_id, admin,
       json::serialize(json::object{{"content", "rotated: token=" + secrets[7]}}));
  Call("POST", "/api/v1/memories/batch", admin,
       json::serialize(
           json::object{{"memories", json::array{json::object{{"content", "key " + secrets[3]},
                                                              {"content_type", "context"},
                                                              {"project", "alpha"}}}}}));
  // Every GET of the API with every key, for good measure.
  for (const auto& key : {admin, reader, bound}) {
    for (const char* path :
         {"/api/v1/projects", "/api/v1/plans", "/api/v1/tasks", "/api/v1/memories",
          "/api/v1/memories/stats", "/api/v1/jobs", "/api/v1/sessions/latest", "/version",
          "/health", "/metrics", "/openapi.json"}) {
      Call("GET", path, key);
    }
  }
  ASSERT_EQ(server_->Stop(), 0);
  server_.reset();

  std::ifstream log_in(db_ + ".server.log");
  std::string log((std::istreambuf_iterator<char>(log_in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(log.empty());
  std::vector<std::pair<std::string, std::string>> needles = {{"secret_key", kSecretKey}};
  for (const auto& [name, key] :
       std::vector<std::pair<std::string, std::string>>{{"admin key", admin},
                                                        {"read key", reader},
                                                        {"revoked key", doomed},
                                                        {"bound key", bound},
                                                        {"wrong key", wrong}}) {
    needles.emplace_back(name, key.substr(4));  // the 64 hex digits
    needles.emplace_back(name + " (tail)", key.substr(key.size() - 24));
  }
  for (size_t i = 0; i < secrets.size(); ++i) {
    needles.emplace_back("memory secret " + std::to_string(i), secrets[i]);
  }
  for (const auto& [name, needle] : needles) {
    EXPECT_EQ(log.find(needle), std::string::npos) << name << " reached the server log";
    for (size_t i = first_http; i < bodies_.size(); ++i) {
      EXPECT_EQ(bodies_[i].find(needle), std::string::npos)
          << name << " in a response: " << bodies_[i].substr(0, 400);
    }
  }
  // Nor the database (keys are stored hashed; memories redacted before storing).
  for (const auto& [name, needle] : needles) {
    if (name.rfind("memory secret", 0) != 0 && name != "admin key") continue;
    auto rows = QueryDatabase(
        db_, "SELECT count(*) FROM semantic_memory WHERE instr(content, '" + needle + "') > 0");
    EXPECT_EQ(rows[0][0], "0") << name << " stored";
    auto keys = QueryDatabase(db_,
                              "SELECT count(*) FROM api_keys WHERE instr(id || name || prefix || "
                              "hash || scopes, '" +
                                  needle + "') > 0");
    EXPECT_EQ(keys[0][0], "0") << name << " stored in api_keys";
  }
  std::cout << "[ secrets ] " << (bodies_.size() - first_http) << " response bodies/headers and "
            << log.size() << " log bytes scanned for " << needles.size() << " secrets\n";
}

TEST_F(AuthzTest, McpRefusesForeignOrigins) {
  const std::string reader = CreateKey("reader", "read");
  StartServer({{"DEVSTREAM_CORS_ORIGINS", "https://rest-only.example"},
               {"DEVSTREAM_MCP_ALLOWED_ORIGINS", "https://app.example"}});
  if (HasFatalFailure()) return;
  auto init = [&](const std::string& origin, const std::string& key) {
    Headers h;
    if (!origin.empty()) h.emplace_back("Origin", origin);
    return Call("POST", "/mcp", key, kInit, h);
  };
  for (const std::string& origin : std::vector<std::string>{
           "", "http://localhost", "http://localhost:3000", "http://127.0.0.1:8080",
           "https://127.0.0.1", "http://[::1]:5173", "https://app.example"}) {
    auto r = init(origin, reader);
    EXPECT_EQ(r.status, 200) << "Origin '" << origin << "': " << r.body;
  }
  for (const std::string& origin :
       std::vector<std::string>{"http://evil.example", "https://rest-only.example",
                                "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                                "http://localhost@evil.example", "http://evil.example/x",
                                "http://localhost:3000/path", "null", "https://app.example.evil",
                                "HTTPS://APP.EXAMPLE", "file://", "http://[::1].evil.example"}) {
    auto r = init(origin, reader);
    EXPECT_EQ(r.status, 403) << "Origin '" << origin << "': " << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;  // a JSON-RPC error
    EXPECT_EQ(r.Header("mcp-session-id"), "") << origin;
    auto del = Call("DELETE", "/mcp", reader, "", {{"Origin", origin}, {"Mcp-Session-Id", "x"}});
    EXPECT_EQ(del.status, 403) << "DELETE with Origin '" << origin << "'";
  }
  // A session opened without Origin cannot be used from a foreign page either.
  auto ok = init("", reader);
  ASSERT_EQ(ok.status, 200);
  std::string sid = ok.Header("mcp-session-id");
  auto ride = Call("POST", "/mcp", reader, R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})",
                   {{"Origin", "http://evil.example"}, {"Mcp-Session-Id", sid}});
  EXPECT_EQ(ride.status, 403) << ride.body;
  // Without a key a foreign origin learns nothing more than 401.
  EXPECT_EQ(init("http://evil.example", "").status, 401);
  // REST keeps its CORS rule: the REST-only origin is fine there.
  auto rest = Call("GET", "/api/v1/plans", reader, "", {{"Origin", "https://rest-only.example"}});
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.Header("access-control-allow-origin"), "https://rest-only.example");
}

}  // namespace
}  // namespace ds::itest
