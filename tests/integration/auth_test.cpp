// API keys end to end on the real binary: `devstream apikey` creates, lists
// and revokes keys; a server with security.auth_enabled answers 401 without
// a key or with a revoked one, 403 for a missing scope, 404 for another
// project's things under a project-bound key, guards /metrics and /mcp the
// same way, and answers CORS for configured origins only. Also: SIGTERM lets
// requests still uploading their bodies finish (none fails) before exiting.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

namespace ds::itest {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    db_ = dir_ + "/auth.db";
    ASSERT_EQ(RunCli({"migrate", "up", "--db", db_}).exit_code, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Creates a key with the CLI; returns the key (shown once).
  std::string CreateKey(const std::string& name, const std::string& scopes,
                        const std::string& project = "") {
    return CreateApiKey(db_, name, scopes, project);
  }

  static std::vector<std::pair<std::string, std::string>> Bearer(const std::string& key) {
    return {{"Authorization", "Bearer " + key}};
  }

  std::string dir_, db_;
};

TEST_F(AuthTest, KeysScopesAndProjectsOverTheRealServer) {
  std::string admin = CreateKey("admin", "admin");
  std::string reader = CreateKey("reader", "read");
  std::string bound = CreateKey("alpha-bot", "write", "alpha");

  // The CLI: bad scopes are a usage error; names are unique among live keys;
  // list never shows a key.
  auto bad = RunCli({"apikey", "create", "--name", "x", "--scopes", "root", "--db", db_});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("not one of read, write, admin"), std::string::npos) << bad.err;
  auto dup = RunCli({"apikey", "create", "--name", "reader", "--db", db_});
  EXPECT_EQ(dup.exit_code, 1) << dup.err;
  auto listed = RunCli({"apikey", "list", "--db", db_, "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(json::parse(listed.out).at("items").as_array().size(), 3u);
  for (const auto& k : {admin, reader, bound}) {
    EXPECT_EQ(listed.out.find(k.substr(12)), std::string::npos) << "a key was listed";
  }

  ServerProcess server(db_, {},
                       {{"DEVSTREAM_AUTH_ENABLED", "true"},
                        {"DEVSTREAM_METRICS_ALLOWED", "10.9.9.9"},
                        {"DEVSTREAM_CORS_ORIGINS", "https://app.example"}});
  ASSERT_TRUE(server.Start());
  int port = server.port();

  // No key: 401 with a challenge, as problem+json. Public routes stay open.
  auto none = Http(port, "GET", "/api/v1/plans");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.Header("www-authenticate").find("Bearer"), std::string::npos);
  EXPECT_NE(none.Header("content-type").find("application/problem+json"), std::string::npos);
  EXPECT_EQ(Http(port, "GET", "/health/live").status, 200);
  EXPECT_EQ(Http(port, "GET", "/openapi.json").status, 200);
  EXPECT_EQ(Http(port, "POST", "/mcp", "{}").status, 401);

  // The admin sets up project beta; the bound key works in alpha without naming it.
  auto beta_plan =
      Http(port, "POST", "/api/v1/plans", R"({"title":"Beta","project":"beta"})", Bearer(admin));
  ASSERT_EQ(beta_plan.status, 201) << beta_plan.body;
  std::string beta_plan_id(beta_plan.Json().at("id").as_string());
  auto beta_phase = Http(port, "POST", "/api/v1/plans/" + beta_plan_id + "/phases",
                         R"({"name":"P"})", Bearer(admin));
  ASSERT_EQ(beta_phase.status, 201) << beta_phase.body;
  auto beta_task =
      Http(port, "POST",
           "/api/v1/phases/" + std::string(beta_phase.Json().at("id").as_string()) + "/tasks",
           R"({"title":"Beta task"})", Bearer(admin));
  ASSERT_EQ(beta_task.status, 201) << beta_task.body;
  std::string beta_task_id(beta_task.Json().at("id").as_string());
  auto beta_memory = Http(port, "POST", "/api/v1/memories",
                          R"({"content":"beta secret plan","content_type":"context",)"
                          R"("project":"beta"})",
                          Bearer(admin));
  ASSERT_EQ(beta_memory.status, 201) << beta_memory.body;
  int64_t beta_memory_id = beta_memory.Json().at("id").as_int64();

  auto alpha_plan = Http(port, "POST", "/api/v1/plans", R"({"title":"Alpha"})", Bearer(bound));
  ASSERT_EQ(alpha_plan.status, 201) << alpha_plan.body;
  std::string alpha_project(alpha_plan.Json().at("project_id").as_string());

  // Scopes: a reader reads everything but cannot write.
  EXPECT_EQ(Http(port, "GET", "/api/v1/tasks/" + beta_task_id, "", Bearer(reader)).status, 200);
  EXPECT_EQ(Http(port, "POST", "/api/v1/search", R"({"query":"plan"})", Bearer(reader)).status,
            200);
  auto denied = Http(port, "POST", "/api/v1/plans", R"({"title":"No"})", Bearer(reader));
  EXPECT_EQ(denied.status, 403);
  EXPECT_NE(denied.body.find("needs write"), std::string::npos) << denied.body;
  EXPECT_EQ(Http(port, "GET", "/api/v1/jobs", "", Bearer(reader)).status, 403);
  EXPECT_EQ(Http(port, "GET", "/api/v1/jobs", "", Bearer(admin)).status, 200);

  // Project confinement: beta does not exist for the bound key.
  EXPECT_EQ(Http(port, "GET", "/api/v1/tasks/" + beta_task_id, "", Bearer(bound)).status, 404);
  EXPECT_EQ(Http(port, "GET", "/api/v1/plans/" + beta_plan_id, "", Bearer(bound)).status, 404);
  EXPECT_EQ(
      Http(port, "GET", "/api/v1/memories/" + std::to_string(beta_memory_id), "", Bearer(bound))
          .status,
      404);
  EXPECT_EQ(Http(port, "GET", "/api/v1/plans?project=beta", "", Bearer(bound)).status, 404);
  EXPECT_EQ(Http(port, "POST", "/api/v1/memories",
                 R"({"content":"x","content_type":"context","project":"beta"})", Bearer(bound))
                .status,
            404);
  auto projects = Http(port, "GET", "/api/v1/projects", "", Bearer(bound));
  ASSERT_EQ(projects.status, 200);
  ASSERT_EQ(projects.Json().at("items").as_array().size(), 1u) << projects.body;
  EXPECT_EQ(projects.Json().at("items").as_array()[0].at("name"), "alpha");
  auto plans = Http(port, "GET", "/api/v1/plans", "", Bearer(bound));
  ASSERT_EQ(plans.status, 200);
  ASSERT_EQ(plans.Json().at("items").as_array().size(), 1u) << plans.body;
  auto found =
      Http(port, "POST", "/api/v1/search", R"({"query":"beta secret plan"})", Bearer(bound));
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(found.body.find("beta secret"), std::string::npos) << "another project's memory";

  // /metrics: an unbound admin key, or an allowed address (not loopback here).
  EXPECT_EQ(Http(port, "GET", "/metrics").status, 403);
  EXPECT_EQ(Http(port, "GET", "/metrics", "", Bearer(reader)).status, 403);
  EXPECT_EQ(Http(port, "GET", "/metrics", "", Bearer(admin)).status, 200);

  // MCP: reading is allowed to a reader, writing tools are not; a session
  // belongs to its key.
  std::vector<std::pair<std::string, std::string>> mcp_headers = Bearer(reader);
  mcp_headers.emplace_back("Accept", "application/json, text/event-stream");
  auto init = Http(port, "POST", "/mcp",
                   R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{)"
                   R"("protocolVersion":"2025-06-18","capabilities":{},)"
                   R"("clientInfo":{"name":"t","version":"1"}}})",
                   mcp_headers);
  ASSERT_EQ(init.status, 200) << init.body;
  std::string sid = init.Header("mcp-session-id");
  ASSERT_FALSE(sid.empty());
  mcp_headers.emplace_back("Mcp-Session-Id", sid);
  mcp_headers.emplace_back("MCP-Protocol-Version", "2025-06-18");
  auto write = Http(port, "POST", "/mcp",
                    R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{)"
                    R"("name":"devstream_store_memory","arguments":{"content":"x"}}})",
                    mcp_headers);
  ASSERT_EQ(write.status, 200) << write.body;
  EXPECT_TRUE(write.Json().at("result").at("isError").as_bool()) << write.body;
  EXPECT_NE(write.body.find("needs write"), std::string::npos) << write.body;
  auto read = Http(port, "POST", "/mcp",
                   R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{)"
                   R"("name":"devstream_list_plans","arguments":{"project":"beta"}}})",
                   mcp_headers);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_FALSE(read.Json().at("result").at("isError").as_bool()) << read.body;
  auto hijack_headers = mcp_headers;
  hijack_headers[0] = {"Authorization", "Bearer " + admin};
  auto hijack = Http(port, "POST", "/mcp", R"({"jsonrpc":"2.0","id":4,"method":"tools/list"})",
                     hijack_headers);
  EXPECT_EQ(hijack.status, 404) << "another key used this key's MCP session";
  // The bound key over MCP: beta's plans are not found, its own are listed.
  auto bound_headers = Bearer(bound);
  bound_headers.emplace_back("Accept", "application/json");
  bound_headers.emplace_back("MCP-Protocol-Version", "2025-06-18");
  auto bound_other = Http(port, "POST", "/mcp",
                          R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{)"
                          R"("name":"devstream_list_plans","arguments":{"project":"beta"}}})",
                          bound_headers);
  ASSERT_EQ(bound_other.status, 200) << bound_other.body;
  EXPECT_TRUE(bound_other.Json().at("result").at("isError").as_bool()) << bound_other.body;
  auto bound_own = Http(port, "POST", "/mcp",
                        R"({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{)"
                        R"("name":"devstream_list_plans","arguments":{}}})",
                        bound_headers);
  ASSERT_EQ(bound_own.status, 200) << bound_own.body;
  EXPECT_NE(bound_own.body.find("Alpha"), std::string::npos) << bound_own.body;
  EXPECT_EQ(bound_own.body.find("Beta"), std::string::npos) << bound_own.body;

  // CORS for the configured origin only.
  auto preflight = Http(port, "OPTIONS", "/api/v1/plans", "",
                        {{"Origin", "https://app.example"},
                         {"Access-Control-Request-Method", "POST"},
                         {"Access-Control-Request-Headers", "authorization"}},
                        false);
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.Header("access-control-allow-origin"), "https://app.example");
  auto cross = Http(port, "GET", "/api/v1/plans", "",
                    {{"Origin", "https://evil.example"}, {"Authorization", "Bearer " + reader}});
  EXPECT_EQ(cross.status, 200);
  EXPECT_EQ(cross.Header("access-control-allow-origin"), "");

  // Revoking takes effect at once, in the running server.
  auto revoked = RunCli({"apikey", "revoke", "reader", "--db", db_});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(Http(port, "GET", "/api/v1/plans", "", Bearer(reader)).status, 401);
  EXPECT_EQ(RunCli({"apikey", "revoke", "reader", "--db", db_}).exit_code, 1);
  // The server never logged a key.
  ASSERT_EQ(server.Stop(), 0);
  std::ifstream log(server.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  for (const auto& k : {admin, reader, bound}) {
    EXPECT_EQ(text.find(k.substr(4)), std::string::npos) << "a key reached the log";
  }
}

TEST_F(AuthTest, SigtermLetsRequestsInFlightFinish) {
  ServerProcess server(db_, {}, {{"DEVSTREAM_SERVICE_MODE", "api"}});
  ASSERT_TRUE(server.Start());
  constexpr int kClients = 6;
  std::vector<int> fds;
  std::vector<std::string> bodies;
  for (int i = 0; i < kClients; ++i) {
    std::string body = R"({"content":"drained memory )" + std::to_string(i) + R"( )" +
                       std::string(2000, 'x') + R"(","content_type":"context"})";
    int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    std::string head =
        "POST /api/v1/memories HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    // Headers and half the body now; the rest after SIGTERM.
    ASSERT_TRUE(SendAll(fd, head + body.substr(0, body.size() / 2)));
    fds.push_back(fd);
    bodies.push_back(body);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // The listener is closed: no new work is accepted while draining.
  int late = Connect(server.port());
  if (late >= 0) {
    // Accepted by the kernel before the close was processed: it must not be served.
    SendAll(late, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ReadUntilClose(late, 5000).find("200 OK"), std::string::npos);
    close(late);
  }
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(SendAll(fds[i], bodies[i].substr(bodies[i].size() / 2)));
    std::string reply = ReadUntilClose(fds[i], 10000);
    EXPECT_EQ(reply.rfind("HTTP/1.1 201", 0), 0u) << "request " << i << ": " << reply;
    close(fds[i]);
  }
  EXPECT_EQ(server.Stop(), 0);
  auto rows = QueryDatabase(db_,
                            "SELECT count(*) FROM semantic_memory WHERE content LIKE "
                            "'drained memory %'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], std::to_string(kClients));
}

}  // namespace
}  // namespace ds::itest
