// Settings precedence (defaults < YAML file < environment < flags), every
// kind of validation error, and production's start-up refusals.
#include "core/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "app/settings.h"
#include "test_util.h"

namespace ds {
namespace {

using app::LoadSettings;
using app::ProductionRefusals;
using app::Settings;
using app::SettingsOptions;

std::string WriteFile(const std::string& text) {
  std::string path = testing::TempDir() + "/settings.yml";
  std::ofstream(path) << text;
  return path;
}

SettingsOptions Options(std::map<std::string, std::string> env = {},
                        std::optional<std::string> file = std::nullopt,
                        std::map<std::string, std::string> flags = {}) {
  SettingsOptions o;
  o.env = std::move(env);
  o.config_file = std::move(file);
  o.flags = std::move(flags);
  return o;
}

TEST(SettingsTest, DefaultsWithNothingSet) {
  auto s = LoadSettings(Options());
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->environment, "development");
  EXPECT_EQ(s->port, 8000);
  EXPECT_EQ(s->host, "127.0.0.1");
  EXPECT_EQ(s->service_mode, "all");
  EXPECT_EQ(s->embedder.provider, "hash");
  EXPECT_EQ(s->config.Source("server.port"), ConfigSource::kDefault);
  EXPECT_TRUE(s->config_file.empty());
}

TEST(SettingsTest, FileBeatsDefaultEnvBeatsFileFlagBeatsEnv) {
  std::string file = WriteFile(
      "server:\n  port: 7001\n  threads: 3\nservice:\n  mode: api\n"
      "mcp:\n  allowed_origins:\n    - https://a.example\n    - https://b.example\n");
  auto s = LoadSettings(Options({{"DEVSTREAM_PORT", "7002"}}, file, {{"server.threads", "9"}}));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->port, 7002);
  EXPECT_EQ(s->config.Source("server.port"), ConfigSource::kEnvironment);
  EXPECT_EQ(s->config.Origin("server.port"), "DEVSTREAM_PORT");
  EXPECT_EQ(s->threads, 9);
  EXPECT_EQ(s->config.Source("server.threads"), ConfigSource::kFlag);
  EXPECT_EQ(s->service_mode, "api");
  EXPECT_EQ(s->config.Source("service.mode"), ConfigSource::kFile);
  EXPECT_EQ(s->config.Origin("service.mode"), file);
  EXPECT_EQ(s->mcp_allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(s->worker.mode, "api");
}

TEST(SettingsTest, EveryBadValueNamesKeyValueSourceAndAllowed) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string needle;
  };
  const Case cases[] = {
      {{{"DEVSTREAM_PORT", "abc"}},
       "server.port = \"abc\" (from environment DEVSTREAM_PORT) is not an integer in 0..65535"},
      {{{"DEVSTREAM_PORT", "70000"}}, "server.port"},
      {{{"DEVSTREAM_SERVICE_MODE", "both"}}, "one of api, task_engine, all"},
      {{{"DEVSTREAM_LOG_LEVEL", "loud"}}, "logging.level"},
      {{{"DEVSTREAM_VECTOR_INT8", "maybe"}}, "true or false"},
      {{{"DEVSTREAM_RETENTION_MAX_RELEVANCE", "1.5"}}, "a number in 0..1"},
      {{{"DEVSTREAM_EMBEDDING_DIM", "4"}}, "memory.embedding.dim"},
      {{{"DEVSTREAM_SCHEDULE", "backup=x"}}, "DEVSTREAM_SCHEDULE"},
      {{{"DEVSTREAM_WORKER_HEARTBEAT_MS", "6000"}}, "worker.heartbeat_ms"},
      {{{"DEVSTREAM_JOB_LEASE_MS", "2000"}, {"DEVSTREAM_WORKER_HEARTBEAT_MS", "1500"}},
       "at most half of worker.job_lease_ms"},
      {{{"DEVSTREAM_ENV", "qa"}}, "is not one of development, staging, production"},
  };
  for (const auto& c : cases) {
    auto s = LoadSettings(Options(c.env));
    ASSERT_FALSE(s.ok()) << c.needle;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.needle), std::string::npos)
        << "message: " << s.status().message() << "\nexpected: " << c.needle;
  }
}

TEST(SettingsTest, SecretValuesAreNeverEchoed) {
  auto bad = LoadSettings(Options({{"DEVSTREAM_EMBEDDING_DIM", "x"}}));
  ASSERT_FALSE(bad.ok());
  auto s = LoadSettings(Options({{"DEVSTREAM_SECRET_KEY", "super-secret-value-1234567890abcdef"},
                                 {"DEVSTREAM_EMBEDDING_API_KEY", "sk-abc"}}));
  ASSERT_TRUE(s.ok());
  std::string shown = ToJsonString(s->config.Show());
  EXPECT_EQ(shown.find("super-secret"), std::string::npos);
  EXPECT_EQ(shown.find("sk-abc"), std::string::npos);
  EXPECT_NE(shown.find("[REDACTED]"), std::string::npos);
}

TEST(SettingsTest, FileErrors) {
  auto unknown = LoadSettings(Options({}, WriteFile("server:\n  prot: 1\n")));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown key server.prot"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("did you mean server.port?"), std::string::npos);
  auto yaml = LoadSettings(Options({}, WriteFile("server: [1, 2\n")));
  ASSERT_FALSE(yaml.ok());
  EXPECT_NE(yaml.status().message().find("not valid YAML"), std::string::npos);
  auto list_for_int = LoadSettings(Options({}, WriteFile("server:\n  port: [1]\n")));
  ASSERT_FALSE(list_for_int.ok());
  EXPECT_NE(list_for_int.status().message().find("server.port"), std::string::npos);
  auto missing = LoadSettings(Options({}, std::string("/nonexistent/devstream.yml")));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot be read"), std::string::npos);
  auto unknown_flag = LoadSettings(Options({}, std::nullopt, {{"server.prot", "1"}}));
  ASSERT_FALSE(unknown_flag.ok());
  EXPECT_NE(unknown_flag.status().message().find("unknown config key server.prot"),
            std::string::npos);
  auto empty = LoadSettings(Options({}, WriteFile("# nothing here\n")));
  EXPECT_TRUE(empty.ok()) << empty.status().message();
}

TEST(SettingsTest, BooleansAndListsAcceptTheirSpellings) {
  for (const char* yes : {"true", "yes", "on", "1", "TRUE"}) {
    auto s = LoadSettings(Options({{"DEVSTREAM_VECTOR_INT8", yes}}));
    ASSERT_TRUE(s.ok()) << yes;
    EXPECT_TRUE(s->index.int8_scan) << yes;
  }
  auto s = LoadSettings(Options({{"DEVSTREAM_MCP_ALLOWED_ORIGINS", " https://x , https://y ,"}}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mcp_allowed_origins, (std::vector<std::string>{"https://x", "https://y"}));
}

TEST(SettingsTest, ProductionRefusesUnsafeStarts) {
  std::string file = WriteFile("environment: production\n");
  auto weak = LoadSettings(Options({{"DEVSTREAM_SECRET_KEY", "short"}}, file));
  ASSERT_TRUE(weak.ok()) << weak.status().message();
  EXPECT_EQ(weak->environment, "production");
  auto refusals = ProductionRefusals(*weak, 2);
  ASSERT_EQ(refusals.size(), 3u);
  EXPECT_NE(refusals[0].find("at least 32 bytes"), std::string::npos);
  EXPECT_NE(refusals[1].find("2 migration(s) pending"), std::string::npos);
  EXPECT_NE(refusals[2].find("security.auth_enabled is false"), std::string::npos);

  std::string key(32, 'k');
  auto open =
      LoadSettings(Options({{"DEVSTREAM_SECRET_KEY", key}, {"DEVSTREAM_HOST", "0.0.0.0"}}, file));
  ASSERT_TRUE(open.ok());
  auto r = ProductionRefusals(*open, 0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_NE(r[1].find("beyond loopback without authentication"), std::string::npos);

  // With API keys on, production may listen beyond loopback (behind nginx).
  auto good = LoadSettings(Options({{"DEVSTREAM_SECRET_KEY", key},
                                    {"DEVSTREAM_AUTH_ENABLED", "true"},
                                    {"DEVSTREAM_HOST", "0.0.0.0"}},
                                   file));
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->auth_enabled);
  EXPECT_TRUE(ProductionRefusals(*good, 0).empty());
  // Development never refuses (it warns when open beyond loopback).
  auto dev = LoadSettings(Options({{"DEVSTREAM_HOST", "0.0.0.0"}}));
  ASSERT_TRUE(dev.ok());
  EXPECT_FALSE(dev->auth_enabled);
  EXPECT_TRUE(ProductionRefusals(*dev, 5).empty());
}

TEST(SettingsTest, CorsDrainAndConnectionDefaults) {
  auto d = LoadSettings(Options({}));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->guard.cors_origins.empty()) << "CORS is off by default";
  EXPECT_EQ(d->max_connections, 50);
  EXPECT_EQ(d->idle_timeout_s, 30);
  EXPECT_EQ(d->request_timeout_s, 120);
  EXPECT_EQ(d->drain_timeout_s, 30);
  auto s = LoadSettings(Options({{"DEVSTREAM_CORS_ORIGINS", "https://a.example,https://b.example"}},
                                std::nullopt, {{"server.drain_timeout_s", "5"}}));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->guard.cors_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(s->drain_timeout_s, 5);
  auto bad = LoadSettings(Options({}, std::nullopt, {{"server.drain_timeout_s", "0"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("server.drain_timeout_s"), std::string::npos);
  auto bad_auth = LoadSettings(Options({{"DEVSTREAM_AUTH_ENABLED", "maybe"}}));
  ASSERT_FALSE(bad_auth.ok());
  EXPECT_NE(bad_auth.status().message().find("security.auth_enabled"), std::string::npos);
}

TEST(SettingsTest, UnknownDevStreamVariablesAreReported) {
  auto s = LoadSettings(Options(
      {{"DEVSTREAM_LOG_LEVLE", "debug"}, {"DEVSTREAM_URL", "http://x"}, {"HOME", "/root"}}));
  ASSERT_TRUE(s.ok());
  auto unknown = s->config.UnknownEnvironment(app::ClientEnvironmentVariables());
  EXPECT_EQ(unknown, (std::vector<std::string>{"DEVSTREAM_LOG_LEVLE"}));
}

TEST(SettingsTest, EnvironmentSelectsTheEmbeddingProvider) {
  auto c = LoadSettings(
      Options({{"DEVSTREAM_EMBEDDING_PROVIDER", "ollama"}, {"OLLAMA_HOST", "10.0.0.5:11434"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->embedder.remote.base_url, "http://10.0.0.5:11434");
  EXPECT_EQ(c->embedder.remote.dim, 768);
  EXPECT_FALSE(LoadSettings(Options({{"DEVSTREAM_EMBEDDING_PROVIDER", "magic"}})).ok());
  EXPECT_FALSE(LoadSettings(Options({{"DEVSTREAM_EMBEDDING_PROVIDER", "hash"},
                                     {"DEVSTREAM_EMBEDDING_DIM", "abc"}}))
                   .ok());
}

TEST(SettingsTest, EnvironmentSetsHnswParameters) {
  auto o = LoadSettings(
      Options({{"DEVSTREAM_HNSW_EF_SEARCH", "300"}, {"DEVSTREAM_HNSW_THRESHOLD", "20000"}}));
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->index.hnsw.ef_search, 300);
  EXPECT_EQ(o->index.hnsw_threshold, 20000u);
  EXPECT_EQ(o->index.hnsw.m, 16);
  auto bad = LoadSettings(Options({{"DEVSTREAM_HNSW_EF_SEARCH", "300"},
                                   {"DEVSTREAM_HNSW_THRESHOLD", "20000"},
                                   {"DEVSTREAM_HNSW_M", "2"}}));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("DEVSTREAM_HNSW_M"), std::string::npos);
}

TEST(SettingsTest, ShippedEnvironmentFilesLoad) {
  for (const char* env : {"development", "staging", "production"}) {
    std::string path =
        std::string(DEVSTREAM_SOURCE_DIR) + "/deployment/environments/" + env + ".yml";
    auto s = LoadSettings(Options({}, path));
    ASSERT_TRUE(s.ok()) << env << ": " << s.status().message();
    EXPECT_EQ(s->environment, env);
    EXPECT_EQ(s->config_file, path);
  }
}

}  // namespace
}  // namespace ds
