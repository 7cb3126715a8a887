// API keys and access control without sockets: ApiKeyStore (hash-only
// storage, scopes, revoke, name reuse), and a Router behind a RequestGuard
// with AccessControl on a real migrated database — 401/403/404 decisions,
// project confinement of path, query, header and body references, force,
// per-key rate limits and CORS.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "api/access.h"
#include "api/guard.h"
#include "api/router.h"
#include "core/json.h"
#include "store/api_keys.h"
#include "tasks/codec.h"
#include "tasks/task_service.h"
#include "test_util.h"

namespace ds::api {
namespace {

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb(&path_);
    ASSERT_TRUE(db_);
    keys_ = std::make_unique<ApiKeyStore>(*db_);
    tasks_ = std::make_unique<tasks::TaskService>(*db_);
    // Two projects, each with a plan, a phase and a task.
    for (const char* name : {"alpha", "beta"}) {
      tasks::PlanInput pi;
      pi.title = std::string("Plan of ") + name;
      pi.project = name;
      auto plan = tasks_->CreatePlan(pi).value();
      tasks::PhaseInput ph;
      ph.name = "Phase";
      auto phase = tasks_->CreatePhase(plan.id, ph).value();
      tasks::TaskInput ti;
      ti.title = std::string("Task of ") + name;
      auto task = tasks_->CreateTask(phase.id, ti).value();
      plan_[name] = plan.id;
      phase_[name] = phase.id;
      task_[name] = task.id;
      project_[name] = plan.project_id;
    }
    // Handlers that only say they ran, and what project they were given.
    auto echo = [](Request& req) {
      const std::string* p = req.Header("x-devstream-project");
      return JsonResponse(200, json::object{{"ran", true}, {"project", p ? *p : ""}});
    };
    router_.Add("GET", "/health", echo, Access::kPublic);
    router_.Add("GET", "/api/v1/projects", echo);
    router_.Add("POST", "/api/v1/projects", echo);
    router_.Add("GET", "/api/v1/projects/{id}", echo);
    router_.Add("GET", "/api/v1/tasks", echo);
    router_.Add("GET", "/api/v1/tasks/{id}", echo);
    router_.Add("PATCH", "/api/v1/tasks/{id}", echo);
    router_.Add("POST", "/api/v1/tasks", echo);
    router_.Add("POST", "/api/v1/search", echo, Access::kRead);
    router_.Add("GET", "/api/v1/memories/{id}", echo);
    router_.Add("GET", "/api/v1/jobs", echo, Access::kAdmin);
  }

  std::string Key(const std::string& name, const std::string& scopes,
                  std::optional<std::string> project = std::nullopt) {
    auto created = keys_->Create(name, ParseApiScopes(scopes).value(), project);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? created->token : "";
  }

  Response Call(RequestGuard& guard, std::string method, std::string path,
                const std::string& key = "", std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    router_.SetGate(&guard);
    Request req;
    req.method = std::move(method);
    req.target = path;
    req.remote_addr = "127.0.0.1";
    req.request_id = "test";
    EXPECT_TRUE(ParseTarget(req).ok());
    req.headers = std::move(headers);
    if (!key.empty()) req.headers.emplace_back("authorization", "Bearer " + key);
    req.body = std::move(body);
    return router_.Dispatch(req);
  }

  std::string path_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<ApiKeyStore> keys_;
  std::unique_ptr<tasks::TaskService> tasks_;
  std::map<std::string, std::string> plan_, phase_, task_, project_;
  Router router_;
};

TEST_F(AccessTest, KeysAreStoredOnlyAsHashesAndScopesNest) {
  auto created = keys_->Create("ci", ParseApiScopes("write").value(), std::nullopt).value();
  EXPECT_EQ(created.token.size(), 4u + 64u);
  EXPECT_EQ(created.token.rfind("dsk_", 0), 0u);
  EXPECT_EQ(created.key.prefix, created.token.substr(0, 12));
  EXPECT_EQ(ApiScopeNames(created.key.scopes), (std::vector<std::string>{"read", "write"}));

  // Nothing in the file holds the token itself.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "SELECT hash, prefix FROM api_keys", -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  std::string hash = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_EQ(hash.find(created.token.substr(4)), std::string::npos);
  sqlite3_finalize(st);
  sqlite3_close(raw);

  auto who = keys_->Authenticate(created.token);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "ci");
  EXPECT_FALSE(who->last_used_at.has_value()) << "never used before this call";
  EXPECT_TRUE(keys_->List(false).value().at(0).last_used_at.has_value());

  EXPECT_EQ(ParseApiScopes("admin").value(), kScopeRead | kScopeWrite | kScopeAdmin);
  EXPECT_EQ(ParseApiScopes("read, write").value(), kScopeRead | kScopeWrite);
  EXPECT_FALSE(ParseApiScopes("root").ok());
  EXPECT_FALSE(ParseApiScopes("").ok());
  EXPECT_FALSE(ParseApiScopes("read,").ok());
}

TEST_F(AccessTest, RevokedAndUnknownKeysAreRefusedAlikeAndNamesCanBeReused) {
  auto created = keys_->Create("laptop", kScopeRead, std::nullopt).value();
  EXPECT_EQ(keys_->Create("laptop", kScopeRead, std::nullopt).status().code(),
            StatusCode::kConflict);
  ASSERT_TRUE(keys_->Revoke("laptop").ok());
  auto revoked = keys_->Authenticate(created.token);
  auto unknown = keys_->Authenticate("dsk_" + std::string(64, 'a'));
  auto malformed = keys_->Authenticate("not-a-key");
  for (const auto* r : {&revoked, &unknown, &malformed}) {
    EXPECT_EQ(r->status().code(), StatusCode::kUnauthorized);
    EXPECT_EQ(r->status().message(), revoked.status().message());
  }
  EXPECT_EQ(keys_->Revoke("laptop").status().code(), StatusCode::kNotFound);
  // Rotation: the name is free again, the old key stays dead.
  auto again = keys_->Create("laptop", kScopeRead, std::nullopt);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(keys_->Authenticate(again->token).ok());
  EXPECT_FALSE(keys_->Authenticate(created.token).ok());
  EXPECT_EQ(keys_->List(false).value().size(), 1u);
  EXPECT_EQ(keys_->List(true).value().size(), 2u);
}

TEST_F(AccessTest, NoKeyOrBadKeyIs401WrongScopeIs403) {
  AccessControl access(*db_);
  RequestGuard guard(GuardOptions{}, &access);
  std::string reader = Key("reader", "read");
  std::string writer = Key("writer", "write");
  std::string admin = Key("admin", "admin");

  Response none = Call(guard, "GET", "/api/v1/tasks");
  EXPECT_EQ(none.status, 401);
  bool challenged = false;
  for (const auto& [k, v] : none.headers) challenged |= k == "WWW-Authenticate";
  EXPECT_TRUE(challenged);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", "dsk_" + std::string(64, '0')).status, 401);
  EXPECT_EQ(Call(guard, "GET", "/health").status, 200);             // public
  EXPECT_EQ(Call(guard, "GET", "/health", "garbage").status, 401);  // a presented key must be valid

  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", reader).status, 200);
  EXPECT_EQ(Call(guard, "POST", "/api/v1/search", reader, "{}").status, 200);
  EXPECT_EQ(Call(guard, "POST", "/api/v1/tasks", reader, "{}").status, 403);
  EXPECT_EQ(Call(guard, "POST", "/api/v1/tasks", writer, "{}").status, 200);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/jobs", writer).status, 403);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/jobs", admin).status, 200);

  // force needs admin, whatever the route's scope.
  std::string force = R"({"status":"completed","force":true})";
  EXPECT_EQ(Call(guard, "PATCH", "/api/v1/tasks/" + task_["alpha"], writer, force).status, 403);
  EXPECT_EQ(Call(guard, "PATCH", "/api/v1/tasks/" + task_["alpha"], admin, force).status, 200);
  EXPECT_EQ(Call(guard, "PATCH", "/api/v1/tasks/" + task_["alpha"], writer,
                 R"({"status":"completed","force":false})")
                .status,
            200);

  ASSERT_TRUE(keys_->Revoke("writer").ok());
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", writer).status, 401);
}

TEST_F(AccessTest, ABoundKeySeesOnlyItsProject) {
  AccessControl access(*db_);
  RequestGuard guard(GuardOptions{}, &access);
  std::string bound = Key("alpha-bot", "write", "alpha");
  std::string admin_bound = Key("alpha-admin", "admin", "alpha");

  // Its own things: allowed, and a request naming no project acts in alpha.
  Response own = Call(guard, "GET", "/api/v1/tasks", bound);
  ASSERT_EQ(own.status, 200);
  EXPECT_EQ(ParseJson(own.body)->as_object().at("project").as_string(), project_["alpha"]);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks/" + task_["alpha"], bound).status, 200);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks?project=alpha", bound).status, 200);

  // Anything of beta is 404, wherever it is named.
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks/" + task_["beta"], bound).status, 404);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks?project=beta", bound).status, 404);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks?plan_id=" + plan_["beta"], bound).status, 404);
  EXPECT_EQ(
      Call(guard, "GET", "/api/v1/tasks", bound, "", {{"x-devstream-project", "beta"}}).status,
      404);
  EXPECT_EQ(Call(guard, "POST", "/api/v1/tasks", bound,
                 R"({"phase_id":")" + phase_["beta"] + R"(","title":"x"})")
                .status,
            404);
  EXPECT_EQ(Call(guard, "POST", "/api/v1/tasks", bound,
                 R"({"phase_id":")" + phase_["alpha"] + R"(","title":"x","depends_on":[{"id":")" +
                     task_["beta"] + R"("}]})")
                .status,
            404);
  EXPECT_EQ(
      Call(guard, "POST", "/api/v1/search", bound, R"({"query":"x","project":"beta"})").status,
      404);
  // A project that does not exist is just as absent (and is not created).
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks?project=gamma", bound).status, 404);
  // Ids that do not exist anywhere are 404 too; strings that are no ids are
  // left to the handler.
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks/tsk_" + std::string(26, '0'), bound).status, 404);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks/not-an-id", bound).status, 200);

  // Projects by name or id.
  EXPECT_EQ(Call(guard, "GET", "/api/v1/projects/alpha", bound).status, 200);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/projects/beta", bound).status, 404);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/projects/" + project_["beta"], bound).status, 404);

  // Spanning projects is forbidden even with admin scope.
  EXPECT_EQ(Call(guard, "POST", "/api/v1/projects", bound, R"({"name":"delta"})").status, 403);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/jobs", admin_bound).status, 403);
}

TEST_F(AccessTest, ToolArgumentsAreConfinedAndWriteToolsNeedWrite) {
  AccessControl access(*db_);
  Caller reader{"key_r", "reader", kScopeRead, ""};
  Caller bound{"key_b", "bot", kScopeRead | kScopeWrite, project_["alpha"]};
  json::object own{{"task_id", task_["alpha"]}};
  json::object other{{"task_id", task_["beta"]}};
  EXPECT_TRUE(access.Confine(reader, false, other).ok());
  EXPECT_EQ(access.Confine(reader, true, own).code(), StatusCode::kForbidden);
  EXPECT_TRUE(access.Confine(bound, true, own).ok());
  EXPECT_EQ(access.Confine(bound, false, other).code(), StatusCode::kNotFound);
  EXPECT_EQ(access.Confine(bound, false, json::object{{"project", "beta"}}).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(access.Confine(bound, true, json::object{{"task_id", task_["alpha"]}, {"force", true}})
                .code(),
            StatusCode::kForbidden);
}

TEST_F(AccessTest, RateLimitIsPerKeyAndCorsOnlyForListedOrigins) {
  AccessControl access(*db_);
  GuardOptions opts;
  opts.rate_per_minute = 1;
  opts.burst = 2;
  opts.cors_origins = {"https://app.example"};
  RequestGuard guard(opts, &access);
  std::string a = Key("a", "read");
  std::string b = Key("b", "read");
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", a).status, 200);
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", a).status, 200);
  Response limited = Call(guard, "GET", "/api/v1/tasks", a);
  EXPECT_EQ(limited.status, 429);
  bool retry_after = false;
  for (const auto& [k, v] : limited.headers) retry_after |= k == "Retry-After";
  EXPECT_TRUE(retry_after);
  // Same address, another key: its own bucket.
  EXPECT_EQ(Call(guard, "GET", "/api/v1/tasks", b).status, 200);

  auto header = [](const Response& r, const std::string& name) -> std::string {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  };
  Response pre =
      Call(guard, "OPTIONS", "/api/v1/tasks", "", "",
           {{"origin", "https://app.example"}, {"access-control-request-method", "POST"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(header(pre, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_NE(header(pre, "Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  Response evil =
      Call(guard, "OPTIONS", "/api/v1/tasks", "", "",
           {{"origin", "https://evil.example"}, {"access-control-request-method", "POST"}});
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(header(evil, "Access-Control-Allow-Origin"), "");
  Response get = Call(guard, "GET", "/api/v1/tasks", b, "", {{"origin", "https://app.example"}});
  EXPECT_EQ(header(get, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(header(get, "Vary"), "Origin");

  // CORS off: no headers for anyone.
  RequestGuard closed(GuardOptions{}, &access);
  Response off = Call(closed, "GET", "/health", "", "", {{"origin", "https://app.example"}});
  EXPECT_EQ(header(off, "Access-Control-Allow-Origin"), "");
}

}  // namespace
}  // namespace ds::api
