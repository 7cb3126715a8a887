// Operations over the real binary: settings reach the server from the
// environment and from flags, bad settings stop it with a message naming the
// key, production refuses unsafe starts, and the log is JSON lines with an
// access line per request and no memory contents.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <sqlite3.h>

#include "harness.h"

namespace ds::itest {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

class OperationsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = TempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(OperationsTest, LogIsJsonLinesWithAccessLinesAndNoMemoryContents) {
  std::string log = dir_ + "/logs/devstream.log";
  ServerProcess server(dir_ + "/ops.db", {}, {{"DEVSTREAM_LOG_FILE", log}});
  ASSERT_TRUE(server.Start());
  const std::string secret_text = "the launch code is walrus-7731";
  auto stored = Http(server.port(), "POST", "/api/v1/memories",
                     R"({"content":")" + secret_text + R"(","content_type":"decision"})");
  ASSERT_EQ(stored.status, 201) << stored.body;
  auto search = Http(server.port(), "POST", "/api/v1/search", R"({"query":"walrus launch"})");
  ASSERT_EQ(search.status, 200);
  ASSERT_EQ(Http(server.port(), "GET", "/api/v1/tasks/tsk_nope").status, 404);
  ASSERT_EQ(server.Stop(), 0);

  auto lines = Lines(log);
  ASSERT_GE(lines.size(), 4u);
  int access = 0;
  bool saw_start = false, saw_drain = false;
  for (const auto& line : lines) {
    EXPECT_EQ(line.find("walrus"), std::string::npos) << "memory content in the log: " << line;
    json::value v;
    ASSERT_NO_THROW(v = json::parse(line)) << line;
    ASSERT_TRUE(v.is_object()) << line;
    const auto& o = v.as_object();
    for (const char* key : {"timestamp", "level", "message"}) {
      ASSERT_TRUE(o.contains(key)) << key << " missing: " << line;
    }
    std::string message(o.at("message").as_string());
    saw_start |= message == "starting";
    saw_drain |= message.find("draining") != std::string::npos;
    if (message == "request") {
      ++access;
      for (const char* key : {"request_id", "method", "route", "status", "bytes", "duration_ms"}) {
        EXPECT_TRUE(o.contains(key)) << key << " missing: " << line;
      }
      if (o.at("status").as_int64() == 404) {
        EXPECT_EQ(o.at("route").as_string(), "/api/v1/tasks/{id}") << line;
      }
    }
  }
  EXPECT_EQ(access, 3);
  EXPECT_TRUE(saw_start);
  EXPECT_TRUE(saw_drain);
}

TEST_F(OperationsTest, SettingsFromEnvironmentAndFileReachTheServer) {
  std::string file = dir_ + "/settings.yml";
  std::ofstream(file) << "logging:\n  access_log: false\nserver:\n  threads: 2\n";
  std::string log = dir_ + "/quiet.log";
  ServerProcess server(dir_ + "/ops.db", {"--config", file},
                       {{"DEVSTREAM_LOG_FILE", log}, {"DEVSTREAM_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(server.Start());
  ASSERT_EQ(Http(server.port(), "GET", "/health").status, 200);
  ASSERT_EQ(server.Stop(), 0);
  // Level warn from the environment and no access lines from the file: the
  // info-level start and request lines are not written.
  for (const auto& line : Lines(log)) {
    EXPECT_EQ(line.find("\"message\":\"request\""), std::string::npos) << line;
    EXPECT_EQ(line.find("\"level\":\"info\""), std::string::npos) << line;
  }
}

TEST_F(OperationsTest, BadSettingsStopTheServerNamingTheKey) {
  auto r =
      RunCli({"serve", "--db", dir_ + "/x.db", "--port", "0"}, {{"DEVSTREAM_LOG_LEVEL", "loud"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("logging.level = \"loud\" (from environment DEVSTREAM_LOG_LEVEL)"),
            std::string::npos)
      << r.err;
  std::string file = dir_ + "/bad.yml";
  std::ofstream(file) << "server:\n  prot: 80\n";
  auto unknown = RunCli({"--config", file, "serve", "--db", dir_ + "/x.db"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown key server.prot (did you mean server.port?)"),
            std::string::npos)
      << unknown.err;
  auto flag = RunCli({"serve", "--db", dir_ + "/x.db", "--port", "http"});
  EXPECT_EQ(flag.exit_code, 2) << flag.err;
  EXPECT_NE(flag.err.find("server.port"), std::string::npos) << flag.err;
}

TEST_F(OperationsTest, ProductionRefusesUnsafeStarts) {
  std::string file = dir_ + "/production.yml";
  std::ofstream(file) << "environment: production\n";
  std::string db = dir_ + "/prod.db";
  // No secret key, and a database that was never migrated.
  auto r = RunCli({"--config", file, "serve", "--db", db, "--port", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("security.secret_key must be at least 32 bytes"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("migration(s) pending"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("security.auth_enabled is false"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db + "-wal"));

  ASSERT_EQ(RunCli({"migrate", "up", "--db", db}).exit_code, 0);
  std::string key(40, 'k');
  auto open = RunCli({"--config", file, "serve", "--db", db, "--host", "0.0.0.0", "--port", "0"},
                     {{"DEVSTREAM_SECRET_KEY", key}});
  EXPECT_EQ(open.exit_code, 1);
  EXPECT_NE(open.err.find("beyond loopback"), std::string::npos) << open.err;
  EXPECT_EQ(open.err.find(key), std::string::npos) << "the secret was echoed";

  auto no_auth = RunCli({"--config", file, "serve", "--db", db, "--port", "0"},
                        {{"DEVSTREAM_SECRET_KEY", key}});
  EXPECT_EQ(no_auth.exit_code, 1);
  EXPECT_NE(no_auth.err.find("security.auth_enabled is false"), std::string::npos) << no_auth.err;

  ServerProcess ok(db, {"--config", file},
                   {{"DEVSTREAM_SECRET_KEY", key}, {"DEVSTREAM_AUTH_ENABLED", "true"}});
  ASSERT_TRUE(ok.Start());
  EXPECT_EQ(Http(ok.port(), "GET", "/health/live").status, 200);
  EXPECT_EQ(Http(ok.port(), "GET", "/api/v1/plans").status, 401);
  EXPECT_EQ(ok.Stop(), 0);
}

TEST_F(OperationsTest, ConfigShowRedactsSecretsAndNamesSources) {
  auto r = RunCli(
      {"--json", "config", "show", "--db", dir_ + "/x.db"},
      {{"DEVSTREAM_SECRET_KEY", "hunter2-hunter2-hunter2-hunter2-x"}, {"DEVSTREAM_PORT", "9123"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("hunter2"), std::string::npos);
  auto v = json::parse(r.out).as_object().at("settings").as_object();
  EXPECT_EQ(v.at("security.secret_key").at("value"), json::value("[REDACTED]"));
  EXPECT_EQ(v.at("server.port").at("value"), json::value(9123));
  EXPECT_EQ(v.at("server.port").at("source"), json::value("environment"));
  EXPECT_EQ(v.at("server.port").at("origin"), json::value("DEVSTREAM_PORT"));
  EXPECT_EQ(v.at("database.path").at("source"), json::value("flag"));
  EXPECT_EQ(v.at("server.threads").at("source"), json::value("default"));
  auto check = RunCli({"config", "check", "--db", dir_ + "/x.db"}, {{"DEVSTREAM_LOG_LEVLE", "x"}});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.err.find("DEVSTREAM_LOG_LEVLE is set but no setting reads it"), std::string::npos)
      << check.err;
}

}  // namespace
}  // namespace ds::itest

namespace ds::itest {
namespace {

json::object HealthOf(int port, int* http_status) {
  // A check against a locked database takes the write retries' time; on a
  // loaded machine the first request may time out, so ask up to 3 times.
  HttpResult h;
  for (int i = 0; i < 3 && h.status == 0; ++i) h = Http(port, "GET", "/health");
  *http_status = h.status;
  boost::system::error_code ec;
  json::value v = json::parse(h.body, ec);
  if (ec || !v.is_object()) {
    ADD_FAILURE() << "/health answered " << h.status << ": " << h.body.substr(0, 300);
    return json::object{{"status", "?"}, {"components", json::object{}}};
  }
  return v.as_object();
}

TEST_F(OperationsTest, HealthFollowsTheDatabaseTheEmbedderAndTheWorkers) {
  std::string db = dir_ + "/health.db";
  // api mode: no worker in this process.
  ServerProcess api(db, {"--mode", "api"});
  ASSERT_TRUE(api.Start());
  int status = 0;
  auto h = HealthOf(api.port(), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(h.at("status"), json::value("degraded"));
  auto c = h.at("components").as_object();
  for (const char* name : {"database", "memory", "tasks", "disk"}) {
    ASSERT_TRUE(c.contains(name)) << name;
    EXPECT_TRUE(c.at(name).as_object().contains("response_time_ms")) << name;
  }
  EXPECT_EQ(c.at("database").at("status"), json::value("healthy"));
  EXPECT_EQ(c.at("memory").at("status"), json::value("healthy"));
  EXPECT_EQ(c.at("tasks").at("status"), json::value("degraded"));
  EXPECT_EQ(c.at("disk").at("status"), json::value("healthy"));
  auto cli = RunCli({"health", "--url", "http://127.0.0.1:" + std::to_string(api.port())});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("degraded"), std::string::npos);
  ASSERT_EQ(api.Stop(), 0);

  // The embedder is unreachable: memory degraded, the server still answers.
  ServerProcess down(db, {},
                     {{"DEVSTREAM_EMBEDDING_PROVIDER", "ollama"},
                      {"DEVSTREAM_EMBEDDING_URL", "http://127.0.0.1:9"}});
  ASSERT_TRUE(down.Start());
  h = HealthOf(down.port(), &status);
  EXPECT_EQ(status, 200);
  c = h.at("components").as_object();
  EXPECT_EQ(c.at("memory").at("status"), json::value("degraded"));
  EXPECT_NE(std::string(c.at("memory").at("error").as_string()).find("embedder failing"),
            std::string::npos);
  ASSERT_EQ(down.Stop(), 0);

  // The database cannot be written (another process holds the write lock
  // past the busy timeout): unhealthy, 503, and `devstream health` exits 1.
  std::string cfg = dir_ + "/fast-busy.yml";
  std::ofstream(cfg) << "database:\n  busy_timeout_ms: 50\n";
  ServerProcess locked(db, {"--config", cfg});
  ASSERT_TRUE(locked.Start());
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &holder), SQLITE_OK);
  sqlite3_busy_timeout(holder, 10000);  // the server's worker writes now and then
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  h = HealthOf(locked.port(), &status);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(h.at("status"), json::value("unhealthy"));
  EXPECT_EQ(h.at("components").at("database").at("status"), json::value("unhealthy"));
  auto sick = RunCli({"health", "--url", "http://127.0.0.1:" + std::to_string(locked.port())});
  EXPECT_EQ(sick.exit_code, 1);
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  h = HealthOf(locked.port(), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(Http(locked.port(), "GET", "/health/ready").status, 200);
  ASSERT_EQ(locked.Stop(), 0);

  // Nothing listening: exit 1 with a message.
  auto none = RunCli({"health", "--url", "http://127.0.0.1:9"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("did not answer"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace ds::itest

namespace ds::itest {
namespace {

TEST_F(OperationsTest, MetricsPassPromtoolAndFollowRequests) {
  ServerProcess server(dir_ + "/metrics.db");
  ASSERT_TRUE(server.Start());
  auto first = Http(server.port(), "GET", "/metrics");
  ASSERT_EQ(first.status, 200);
  EXPECT_NE(first.Header("content-type").find("text/plain"), std::string::npos);
  ASSERT_EQ(Http(server.port(), "POST", "/api/v1/memories",
                 R"({"content":"metrics are scraped","content_type":"learning"})")
                .status,
            201);
  // The memory counts are cached between scrapes until a memory changes:
  // each change must show in the next scrape.
  auto doomed = Http(server.port(), "POST", "/api/v1/memories",
                     R"({"content":"forgotten before the scrape","content_type":"learning"})");
  ASSERT_EQ(doomed.status, 201);
  EXPECT_NE(Http(server.port(), "GET", "/metrics")
                .body.find(R"(devstream_memories{project="default"} 2)"),
            std::string::npos);
  auto doomed_id = std::to_string(json::parse(doomed.body).as_object().at("id").as_int64());
  ASSERT_EQ(Http(server.port(), "POST", "/api/v1/memories/" + doomed_id + "/forget").status, 200);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Http(server.port(), "POST", "/api/v1/search", R"({"query":"scraped"})").status, 200);
  }
  auto second = Http(server.port(), "GET", "/metrics");
  ASSERT_EQ(second.status, 200);
  const std::string& m = second.body;
  EXPECT_NE(
      m.find(
          R"(devstream_http_requests_total{method="POST",route="/api/v1/search",status="200"} 3)"),
      std::string::npos)
      << m.substr(0, 2000);
  EXPECT_NE(m.find(R"(devstream_search_duration_seconds_count{stage="embed"} 3)"),
            std::string::npos);
  EXPECT_NE(m.find(R"(devstream_memories{project="default"} 1)"), std::string::npos);
  EXPECT_NE(m.find("devstream_build_info{version="), std::string::npos);
  EXPECT_NE(m.find("devstream_database_bytes "), std::string::npos);
  EXPECT_EQ(first.body.find(R"(route="/api/v1/search")"), std::string::npos);

  // promtool (Debian's prometheus package, in the test package list) accepts it.
  std::string file = dir_ + "/metrics.txt";
  std::ofstream(file) << m;
  int rc = std::system(
      ("promtool check metrics < " + file + " > " + dir_ + "/promtool.out 2>&1").c_str());
  std::ifstream out(dir_ + "/promtool.out");
  std::stringstream text;
  text << out.rdbuf();
  EXPECT_EQ(rc, 0) << "promtool: " << text.str();
  ASSERT_EQ(server.Stop(), 0);

  // Only the configured addresses may read /metrics.
  ServerProcess closed(dir_ + "/metrics.db", {}, {{"DEVSTREAM_METRICS_ALLOWED", "10.1.2.3"}});
  ASSERT_TRUE(closed.Start());
  auto denied = Http(closed.port(), "GET", "/metrics");
  EXPECT_EQ(denied.status, 403);
  EXPECT_NE(denied.Header("content-type").find("application/problem+json"), std::string::npos);
  ASSERT_EQ(closed.Stop(), 0);
}

}  // namespace
}  // namespace ds::itest

namespace ds::itest {
namespace {

std::string Scalar(const std::string& db, const std::string& sql) {
  auto rows = QueryDatabase(db, sql);
  return rows.empty() || rows[0].empty() ? "" : rows[0][0];
}

TEST_F(OperationsTest, BackupDuringWritesRestoresConsistently) {
  std::string db = dir_ + "/live.db";
  ServerProcess server(db);
  ASSERT_TRUE(server.Start());
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < 400 && !stop; ++i) {
      auto r = Http(
          server.port(), "POST", "/api/v1/memories",
          R"({"content":"storm memory )" + std::to_string(i) + R"(","content_type":"context"})");
      if (r.status == 201) ++written;
    }
  });
  while (written < 30) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto made = RunCli({"--json", "backup", "create", "--db", db, "--dir", dir_ + "/bk"});
  stop = true;
  writer.join();
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string path(json::parse(made.out).at("path").as_string());
  EXPECT_EQ(RunCli({"backup", "verify", path}).exit_code, 0);
  EXPECT_EQ(Scalar(path, "PRAGMA integrity_check"), "ok");
  // The copy is one consistent snapshot: memory, keyword and vector rows agree.
  std::string copied = Scalar(path, "SELECT count(*) FROM semantic_memory");
  EXPECT_GE(std::stoi(copied), 30);
  EXPECT_EQ(Scalar(path, "SELECT count(*) FROM memory_fts"), copied);
  EXPECT_EQ(Scalar(path, "SELECT count(*) FROM memory_vectors"), copied);
  // Two backups in the same second never overwrite each other.
  auto again = RunCli({"--json", "backup", "create", "--db", db, "--dir", dir_ + "/bk"});
  auto third = RunCli({"--json", "backup", "create", "--db", db, "--dir", dir_ + "/bk"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  ASSERT_EQ(third.exit_code, 0) << third.err;
  std::set<std::string> paths{path, std::string(json::parse(again.out).at("path").as_string()),
                              std::string(json::parse(third.out).at("path").as_string())};
  EXPECT_EQ(paths.size(), 3u);
  EXPECT_EQ(Scalar(path, "SELECT count(*) FROM semantic_memory"), copied) << "overwritten";
  EXPECT_EQ(Scalar(path, "PRAGMA journal_mode"), "delete") << "a backup stands alone";

  // Restore into the live database while the server runs: it sees the
  // backup's content at once, and the replaced content was saved first.
  ASSERT_EQ(Http(server.port(), "POST", "/api/v1/memories",
                 R"({"content":"written after the backup zebra","content_type":"context"})")
                .status,
            201);
  auto restored = RunCli({"--json", "restore", path, "--db", db});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  auto out = json::parse(restored.out).as_object();
  std::string previous(out.at("previous_content").as_string());
  EXPECT_EQ(Scalar(previous, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(Scalar(previous, "SELECT count(*) FROM semantic_memory WHERE content LIKE '%zebra%'"),
            "1");
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM semantic_memory"), copied);
  EXPECT_EQ(Scalar(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(Scalar(db, "PRAGMA journal_mode"), "wal") << "the live database must stay in WAL mode";
  EXPECT_FALSE(std::filesystem::exists(path + "-wal")) << "reading the backup left a WAL file";
  // Searches answer from the restored content (the index reloads).
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    auto s = Http(server.port(), "POST", "/api/v1/search", R"({"query":"zebra"})");
    gone = s.status == 200 && json::parse(s.body).at("results").as_array().empty();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "the server still finds content the restore removed";
  EXPECT_EQ(Http(server.port(), "GET", "/health").status, 200);
  ASSERT_EQ(server.Stop(), 0);

  // A file that is not a backup is refused and nothing changes.
  std::string junk = dir_ + "/junk.db";
  std::ofstream(junk) << "not a database";
  std::string before = DumpDatabase(db);
  auto refused = RunCli({"restore", junk, "--db", db});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("refusing to restore"), std::string::npos) << refused.err;
  EXPECT_EQ(DumpDatabase(db), before);
}

}  // namespace
}  // namespace ds::itest

namespace ds::itest {
namespace {

TEST_F(OperationsTest, RateLimitsHostsAndTrustedProxies) {
  std::string cfg = dir_ + "/guard.yml";
  std::ofstream(cfg) << "security:\n  rate_limit_per_minute: 60\n  rate_limit_burst: 3\n"
                        "  trusted_proxies: [127.0.0.1]\n"
                        "metrics:\n  allowed_addresses: [10.9.9.9]\n";
  ServerProcess server(dir_ + "/guard.db", {"--config", cfg});
  ASSERT_TRUE(server.Start());
  auto as = [&](const std::string& client, const std::string& target) {
    return Http(server.port(), "GET", target, "", {{"X-Forwarded-For", "203.0.113.7, " + client}});
  };
  // Three at once, then 429 with Retry-After, per client.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(as("198.51.100.1", "/version").status, 200) << i;
  auto limited = as("198.51.100.1", "/version");
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.Header("content-type").find("application/problem+json"), std::string::npos);
  EXPECT_GE(std::stoi(limited.Header("retry-after")), 1);
  EXPECT_EQ(as("198.51.100.2", "/version").status, 200) << "another client has its own bucket";
  // Health checks are never limited.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(as("198.51.100.1", "/health/live").status, 200);
  // The proxy is trusted: /metrics sees the forwarded client.
  EXPECT_EQ(as("10.9.9.9", "/metrics").status, 200);
  EXPECT_EQ(as("10.9.9.8", "/metrics").status, 403);
  ASSERT_EQ(server.Stop(), 0);

  // Not trusted: X-Forwarded-For is ignored, the peer (127.0.0.1) is the client.
  std::string open_cfg = dir_ + "/untrusted.yml";
  std::ofstream(open_cfg) << "metrics:\n  allowed_addresses: [10.9.9.9]\n"
                             "security:\n  allowed_hosts: [devstream.example]\n";
  ServerProcess plain(dir_ + "/guard.db", {"--config", open_cfg});
  ASSERT_TRUE(plain.Start());
  auto spoofed = Http(plain.port(), "GET", "/metrics", "",
                      {{"X-Forwarded-For", "10.9.9.9"}, {"Host", "devstream.example"}});
  EXPECT_EQ(spoofed.status, 403) << "an untrusted peer must not choose its address";
  // Allowed hosts: the Host header decides (port ignored).
  EXPECT_EQ(Http(plain.port(), "GET", "/version", "", {{"Host", "devstream.example:8443"}}).status,
            200);
  auto wrong = Http(plain.port(), "GET", "/version", "", {{"Host", "evil.example"}});
  EXPECT_EQ(wrong.status, 400);
  EXPECT_NE(wrong.body.find("not served here"), std::string::npos) << wrong.body;
  ASSERT_EQ(plain.Stop(), 0);
}

}  // namespace
}  // namespace ds::itest
