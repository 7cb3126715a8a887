// End-to-end tests of the REST API against the real binary and a real SQLite file.
#include <gtest/gtest.h>

#include "harness.h"

namespace ds::itest {
namespace {

class RestApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = TempDir() + "/api.db";
    server_ = std::make_unique<ServerProcess>(db_);
    ASSERT_TRUE(server_->Start()) << "server did not start";
  }
  void TearDown() override { EXPECT_EQ(server_->Stop(), 0) << "graceful shutdown exit code"; }

  HttpResult Post(const std::string& path, const std::string& body,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Http(server_->port(), "POST", path, body, headers);
  }
  HttpResult Get(const std::string& path) { return Http(server_->port(), "GET", path); }
  std::string Id(const HttpResult& r) {
    auto v = r.Json();
    if (!v.is_object() || !v.as_object().contains("id")) return "";
    return std::string(v.at("id").as_string());
  }

  // A plan with one phase and tasks a <- b (b depends on a).
  void MakePlan() {
    auto plan = Post("/api/v1/plans", R"({"title":"Add login","priority":7})");
    ASSERT_EQ(plan.status, 201) << plan.body;
    plan_ = Id(plan);
    auto phase = Post("/api/v1/plans/" + plan_ + "/phases", R"({"name":"Build"})");
    ASSERT_EQ(phase.status, 201) << phase.body;
    phase_ = Id(phase);
    auto a = Post("/api/v1/phases/" + phase_ + "/tasks",
                  R"({"title":"Schema","task_type":"coding","estimated_minutes":4})");
    ASSERT_EQ(a.status, 201) << a.body;
    a_ = Id(a);
    auto b = Post("/api/v1/phases/" + phase_ + "/tasks",
                  R"({"title":"Endpoint","depends_on":[")" + a_ + R"("]})");
    ASSERT_EQ(b.status, 201) << b.body;
    b_ = Id(b);
  }

  std::string db_;
  std::unique_ptr<ServerProcess> server_;
  std::string plan_, phase_, a_, b_;
};

TEST_F(RestApiTest, WalkthroughPlanPhaseTasksReadyTransitionsGraph) {
  MakePlan();
  auto ready = Get("/api/v1/tasks/ready?plan_id=" + plan_);
  ASSERT_EQ(ready.status, 200);
  auto items = ready.Json().at("items").as_array();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].at("id").as_string(), a_);

  auto blocked = Post("/api/v1/tasks/" + b_ + "/transition", R"({"to":"active"})");
  EXPECT_EQ(blocked.status, 409) << blocked.body;
  EXPECT_EQ(blocked.Header("content-type"), "application/problem+json");
  EXPECT_EQ(blocked.Json().at("unmet").as_array().size(), 1u);

  EXPECT_EQ(Post("/api/v1/tasks/" + a_ + "/transition", R"({"to":"active"})").status, 200);
  auto done = Post("/api/v1/tasks/" + a_ + "/transition",
                   R"({"to":"completed","note":"done","context_tokens_used":1200})",
                   {{"X-DevStream-Agent", "claude"}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.Json().at("status").as_string(), "completed");
  EXPECT_EQ(done.Json().at("context_tokens_used").as_int64(), 1200);

  auto illegal = Post("/api/v1/tasks/" + a_ + "/transition", R"({"to":"active"})");
  EXPECT_EQ(illegal.status, 409);
  EXPECT_TRUE(illegal.Json().at("allowed").as_array().empty());

  EXPECT_EQ(Post("/api/v1/tasks/" + b_ + "/transition", R"({"to":"active"})").status, 200);
  EXPECT_EQ(Post("/api/v1/tasks/" + b_ + "/transition", R"({"to":"completed"})").status, 200);

  auto plan = Get("/api/v1/plans/" + plan_);
  ASSERT_EQ(plan.status, 200);
  EXPECT_EQ(plan.Json().at("status").as_string(), "completed");
  EXPECT_EQ(plan.Json().at("progress").at("percent").as_int64(), 100);

  auto graph = Get("/api/v1/plans/" + plan_ + "/graph");
  ASSERT_EQ(graph.status, 200);
  auto g = graph.Json();
  EXPECT_EQ(g.at("order").as_array().size(), 2u);
  EXPECT_EQ(g.at("order").as_array()[0].as_string(), a_);
  EXPECT_EQ(g.at("levels").as_array().size(), 2u);
  EXPECT_EQ(g.at("critical_path").at("minutes").as_int64(), 14);
  EXPECT_EQ(g.at("progress").at("context_tokens_used").as_int64(), 1200);

  auto events = Get("/api/v1/tasks/" + a_ + "/events");
  ASSERT_EQ(events.status, 200);
  auto ev = events.Json().at("items").as_array();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2].at("actor").as_string(), "claude");
}

TEST_F(RestApiTest, ProjectsScopeLists) {
  EXPECT_EQ(Post("/api/v1/projects", R"({"name":"webapp"})").status, 201);
  EXPECT_EQ(Post("/api/v1/projects", R"({"name":"webapp"})").status, 409);
  EXPECT_EQ(Post("/api/v1/plans", R"({"title":"In webapp","project":"webapp"})").status, 201);
  EXPECT_EQ(Post("/api/v1/plans", R"({"title":"Header project"})", {{"X-DevStream-Project", "cli"}})
                .status,
            201);
  EXPECT_EQ(Post("/api/v1/plans", R"({"title":"Default"})").status, 201);
  auto webapp = Get("/api/v1/plans?project=webapp");
  ASSERT_EQ(webapp.status, 200);
  ASSERT_EQ(webapp.Json().at("items").as_array().size(), 1u);
  EXPECT_EQ(webapp.Json().at("items").as_array()[0].at("title").as_string(), "In webapp");
  EXPECT_EQ(Get("/api/v1/plans").Json().at("items").as_array().size(), 1u);
  EXPECT_EQ(Get("/api/v1/plans?project=cli").Json().at("items").as_array().size(), 1u);
  EXPECT_EQ(Get("/api/v1/plans?project=nope").status, 404);
  EXPECT_EQ(Get("/api/v1/projects").Json().at("items").as_array().size(), 3u);
}

TEST_F(RestApiTest, CursorPaginationAndFilters) {
  MakePlan();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(
        Post("/api/v1/tasks", R"({"phase_id":")" + phase_ + R"(","title":"extra )" +
                                  std::to_string(i) + R"(","priority":9,"task_type":"testing"})")
            .status,
        201);
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = Get("/api/v1/tasks?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(page.status, 200) << page.body;
    auto page_json = page.Json();
    for (const auto& t : page_json.at("items").as_array()) {
      EXPECT_TRUE(seen.insert(std::string(t.at("id").as_string())).second);
    }
    auto next = page_json.at("next_cursor");
    cursor = next.is_string() ? std::string(next.as_string()) : "";
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(pages, 3);
  auto testing = Get("/api/v1/tasks?task_type=testing&priority_min=9&plan_id=" + plan_);
  EXPECT_EQ(testing.Json().at("items").as_array().size(), 5u);
  EXPECT_EQ(
      Get("/api/v1/tasks?status=pending&phase_id=" + phase_).Json().at("items").as_array().size(),
      7u);
}

TEST_F(RestApiTest, OptimisticConcurrencyWithIfMatch) {
  MakePlan();
  auto task = Get("/api/v1/tasks/" + a_);
  EXPECT_EQ(task.Header("etag"), "\"1\"");
  auto ok = Http(server_->port(), "PATCH", "/api/v1/tasks/" + a_, R"({"title":"Schema v2"})",
                 {{"If-Match", "\"1\""}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Json().at("version").as_int64(), 2);
  std::string before = DumpDatabase(db_);
  auto stale = Http(server_->port(), "PATCH", "/api/v1/tasks/" + a_, R"({"title":"lost update"})",
                    {{"If-Match", "\"1\""}});
  EXPECT_EQ(stale.status, 412) << stale.body;
  EXPECT_EQ(stale.Json().at("current_version").as_int64(), 2);
  auto stale_body = Post("/api/v1/tasks/" + a_ + "/transition", R"({"to":"active","version":1})");
  EXPECT_EQ(stale_body.status, 412);
  auto stale_plan =
      Http(server_->port(), "PATCH", "/api/v1/plans/" + plan_, R"({"title":"x","version":7})");
  EXPECT_EQ(stale_plan.status, 412);
  EXPECT_EQ(DumpDatabase(db_), before);
}

TEST_F(RestApiTest, DependenciesCyclesAndRemoval) {
  MakePlan();
  auto cycle = Post("/api/v1/tasks/" + a_ + "/dependencies", R"({"depends_on":")" + b_ + "\"}");
  EXPECT_EQ(cycle.status, 409) << cycle.body;
  EXPECT_GE(cycle.Json().at("cycle").as_array().size(), 3u);
  auto c = Post("/api/v1/phases/" + phase_ + "/tasks",
                R"({"title":"Docs","task_type":"documentation"})");
  std::string c_id = Id(c);
  auto soft = Post("/api/v1/tasks/" + c_id + "/dependencies",
                   R"({"depends_on":{"id":")" + b_ + R"(","kind":"soft"}})");
  ASSERT_EQ(soft.status, 200) << soft.body;
  EXPECT_EQ(soft.Json().at("depends_on").as_array()[0].at("kind").as_string(), "soft");
  auto removed = Http(server_->port(), "DELETE", "/api/v1/tasks/" + b_ + "/dependencies/" + a_);
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_TRUE(removed.Json().at("depends_on").as_array().empty());
  EXPECT_EQ(Http(server_->port(), "DELETE", "/api/v1/tasks/" + b_ + "/dependencies/" + a_).status,
            404);
  // With the edge gone, b is ready too.
  EXPECT_EQ(Get("/api/v1/tasks/ready").Json().at("items").as_array().size(), 3u);
}

TEST_F(RestApiTest, PhaseDependenciesGateReadiness) {
  MakePlan();
  auto p2 = Post("/api/v1/plans/" + plan_ + "/phases",
                 R"({"name":"Ship","depends_on":[")" + phase_ + "\"]}");
  ASSERT_EQ(p2.status, 201) << p2.body;
  auto t = Post("/api/v1/phases/" + Id(p2) + "/tasks", R"({"title":"Deploy","priority":10})");
  ASSERT_EQ(t.status, 201);
  auto ready = Get("/api/v1/tasks/ready").Json().at("items").as_array();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].at("id").as_string(), a_);
  auto p1_on_p2 = Http(server_->port(), "PATCH", "/api/v1/phases/" + phase_,
                       R"({"depends_on":[")" + Id(p2) + "\"]}");
  EXPECT_EQ(p1_on_p2.status, 409) << p1_on_p2.body;
}

TEST_F(RestApiTest, DeleteCascadesAndUnknownIdsAre404) {
  MakePlan();
  EXPECT_EQ(Http(server_->port(), "DELETE", "/api/v1/plans/" + plan_).status, 204);
  EXPECT_EQ(Get("/api/v1/plans/" + plan_).status, 404);
  EXPECT_EQ(Get("/api/v1/tasks/" + a_).status, 404);
  EXPECT_EQ(Get("/api/v1/phases/" + phase_).status, 404);
  EXPECT_EQ(Get("/api/v1/tasks/tsk_nope").status, 404);
  EXPECT_EQ(Post("/api/v1/phases/phs_nope/tasks", R"({"title":"x"})").status, 404);
}

struct BadRequest {
  std::string name, method, path, body;
  int expected;
  bool json_type = true;
  std::vector<std::pair<std::string, std::string>> headers = {};
};

TEST_F(RestApiTest, BadRequestsGetProblemJsonAndLeaveDataUnchanged) {
  MakePlan();
  const std::string t = "/api/v1/tasks/" + a_;
  const std::string ph = "/api/v1/phases/" + phase_ + "/tasks";
  std::vector<BadRequest> cases = {
      {"malformed json", "POST", "/api/v1/plans", R"({"title":)", 400},
      {"truncated json", "POST", ph, R"({"title":"x")", 400},
      {"not json", "POST", ph, "title=x", 400, false},
      {"wrong content type", "POST", ph, R"({"title":"x"})", 400, false},
      {"empty body", "POST", t + "/transition", "", 400},
      {"deep nesting", "POST", ph, std::string(5000, '[') + std::string(5000, ']'), 400},
      {"array body", "POST", ph, "[]", 422},
      {"missing title", "POST", ph, R"({"description":"x"})", 422},
      {"wrong type", "POST", ph, R"({"title":42})", 422},
      {"unknown field", "POST", ph, R"({"title":"x","owner":"me"})", 422},
      {"priority range", "POST", ph, R"({"title":"x","priority":0})", 422},
      {"huge number", "POST", ph, R"({"title":"x","priority":1e308})", 422},
      {"max duration", "POST", ph, R"({"title":"x","max_duration_minutes":11})", 422},
      {"bad task type", "POST", ph, R"({"title":"x","task_type":"nap"})", 422},
      {"long title", "POST", ph, R"({"title":")" + std::string(201, 'x') + "\"}", 422},
      {"nul in title", "POST", ph, R"({"title":"a\u0000b"})", 422},
      {"invalid utf8", "POST", ph, "{\"title\":\"\xff\xfe\"}", 400},
      {"dependency not an id", "POST", ph, R"({"title":"x","depends_on":["../../etc"]})", 422},
      {"dependency unknown", "POST", ph,
       R"({"title":"x","depends_on":["tsk_00000000000000000000000000"]})", 422},
      {"bad status value", "POST", t + "/transition", R"({"to":"done"})", 422},
      {"illegal transition", "POST", t + "/transition", R"({"to":"completed"})", 409},
      {"patch status", "PATCH", t, R"({"status":"completed"})", 422},
      {"bad if-match", "PATCH", t, R"({"title":"y"})", 400, true, {{"If-Match", "abc"}}},
      {"unknown task", "GET", "/api/v1/tasks/tsk_00000000000000000000000000", "", 404},
      {"unknown route", "GET", "/api/v1/elephants", "", 404},
      {"wrong method", "PUT", t, R"({"title":"y"})", 405},
      {"negative limit", "GET", "/api/v1/tasks?limit=-5", "", 422},
      {"limit not a number", "GET", "/api/v1/tasks?limit=ten", "", 422},
      {"unknown query param", "GET", "/api/v1/tasks?colour=red", "", 422},
      {"bad status filter", "GET", "/api/v1/tasks?status=nope", "", 422},
      {"forged cursor", "GET", "/api/v1/tasks?cursor=AAAA", "", 422},
      {"sql injection in filter", "GET", "/api/v1/tasks?assigned_agent=x'%20OR%201=1--", "", 200},
      {"self dependency", "POST", t + "/dependencies", R"({"depends_on":")" + a_ + "\"}", 409},
      {"plan completed by hand", "PATCH", "/api/v1/plans/" + plan_, R"({"status":"completed"})",
       409},
      {"bad plan metadata", "POST", "/api/v1/plans", R"({"title":"x","metadata":[1]})", 422},
  };
  for (const auto& c : cases) {
    std::string before = DumpDatabase(db_);
    auto r = Http(server_->port(), c.method, c.path, c.body, c.headers, c.json_type);
    EXPECT_EQ(r.status, c.expected) << c.name << ": " << r.body;
    if (c.expected >= 400) {
      EXPECT_EQ(r.Header("content-type"), "application/problem+json") << c.name;
      auto problem = r.Json();
      ASSERT_TRUE(problem.is_object()) << c.name << ": " << r.body;
      EXPECT_EQ(problem.at("status").as_int64(), c.expected) << c.name;
      EXPECT_FALSE(problem.at("detail").as_string().empty()) << c.name;
    }
    EXPECT_EQ(DumpDatabase(db_), before) << c.name << " changed stored data";
    EXPECT_EQ(Get("/health").status, 200) << "server unhealthy after " << c.name;
  }
  auto sql = Get("/api/v1/tasks?assigned_agent=x'%20OR%201=1--");
  EXPECT_TRUE(sql.Json().at("items").as_array().empty());
}

TEST_F(RestApiTest, OversizedBodyIs413) {
  std::string big = R"({"title":")" + std::string(2 << 20, 'x') + "\"}";
  std::string before = DumpDatabase(db_);
  auto r = Post("/api/v1/plans", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Header("content-type"), "application/problem+json");
  EXPECT_EQ(DumpDatabase(db_), before);
  EXPECT_EQ(Get("/health").status, 200);
}

TEST_F(RestApiTest, HealthVersionOpenApiAndRequestId) {
  auto h = Get("/health");
  ASSERT_EQ(h.status, 200);
  auto body = h.Json();
  EXPECT_EQ(body.at("status").as_string(), "healthy");
  EXPECT_TRUE(body.at("components").at("database").as_object().contains("response_time_ms"));
  EXPECT_TRUE(body.as_object().contains("timestamp"));
  EXPECT_EQ(Get("/health/live").status, 200);
  EXPECT_EQ(Get("/health/ready").status, 200);
  EXPECT_EQ(Get("/version").Json().at("name").as_string(), "devstream");
  auto spec = Get("/openapi.json");
  ASSERT_EQ(spec.status, 200);
  EXPECT_EQ(std::string(spec.Json().at("openapi").as_string()).substr(0, 3), "3.1");
  auto echoed = Http(server_->port(), "GET", "/health", "", {{"X-Request-Id", "abc-123"}});
  EXPECT_EQ(echoed.Header("x-request-id"), "abc-123");
  EXPECT_EQ(Get("/health").Header("x-request-id").size(), 32u);
}

TEST_F(RestApiTest, DataSurvivesRestart) {
  MakePlan();
  EXPECT_EQ(server_->Stop(), 0);
  server_ = std::make_unique<ServerProcess>(db_);
  ASSERT_TRUE(server_->Start());
  auto t = Get("/api/v1/tasks/" + b_);
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.Json().at("depends_on").as_array()[0].at("id").as_string(), a_);
}

}  // namespace
}  // namespace ds::itest
