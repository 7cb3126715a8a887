// Settings: everything a DevStream process is configured with, loaded once
// through core/config.h from, lowest first: built-in defaults <
// deployment/environments/<env>.yml (the environment from --env or
// DEVSTREAM_ENV; or the file named by --config / DEVSTREAM_CONFIG) <
// DEVSTREAM_* environment variables < command-line flags. Every key is typed
// and validated; SettingsSchema() is the one list of keys, their variables,
// defaults and ranges (`devstream config show` prints it with each value's
// source, secrets redacted).
// Thread-safety: a loaded Settings is an immutable value.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/guard.h"
#include "core/config.h"
#include "core/log.h"
#include "core/status.h"
#include "engine/job_handlers.h"
#include "engine/scheduler.h"
#include "engine/worker.h"
#include "memory/remote_embedder.h"
#include "memory/vector_index.h"

namespace ds::app {

const std::vector<ConfigKeySpec>& SettingsSchema();
// Variables read by clients (hooks, MCP relay), not server settings.
const std::vector<std::string>& ClientEnvironmentVariables();

struct SettingsOptions {
  std::optional<std::string> config_file;                 // --config
  std::optional<std::string> environment;                 // --env
  std::map<std::string, std::string> flags;               // key -> value (highest precedence)
  std::optional<std::map<std::string, std::string>> env;  // default: the process's
};

struct Settings {
  Config config;
  std::string environment;  // development | staging | production
  std::string config_file;  // "" when none was read

  std::string database_path;  // database.path, else DefaultDatabasePath()
  int reader_pool = 10;
  int busy_timeout_ms = 5000;

  std::string host;
  uint16_t port = 8000;
  int threads = 4;
  size_t body_limit = 1 << 20;
  size_t header_limit = 16 * 1024;
  int request_timeout_s = 120;
  int idle_timeout_s = 30;
  int max_connections = 50;
  int drain_timeout_s = 30;
  std::string service_mode;
  LogOptions log;
  bool access_log = true;
  std::string secret_key;
  bool auth_enabled = false;

  memory::EmbedderConfig embedder;
  memory::VectorIndexOptions index;
  engine::WorkerOptions worker;
  engine::Backoff backoff;
  std::vector<engine::Schedule> schedules;
  engine::EngineSettings engine;
  std::vector<std::string> mcp_allowed_origins;
  std::vector<std::string> metrics_allowed;
  api::GuardOptions guard;
};

// InvalidArgument naming the key, value, source and what is allowed.
Result<Settings> LoadSettings(const SettingsOptions& options);

// True unless server.host is a loopback address.
bool ListensBeyondLoopback(const Settings& s);
// Reasons a production server must not start (empty: none). `pending`
// is the number of unapplied migrations.
std::vector<std::string> ProductionRefusals(const Settings& s, int pending_migrations);

}  // namespace ds::app
