#include "app/settings.h"

#include <filesystem>

#include "store/database.h"

namespace ds::app {
namespace {

using T = ConfigType;

ConfigKeySpec Key(std::string key, T type, std::string def, std::string description,
                  std::vector<std::string> env = {}) {
  ConfigKeySpec s;
  s.key = std::move(key);
  s.type = type;
  s.default_value = std::move(def);
  s.description = std::move(description);
  s.env = std::move(env);
  return s;
}

ConfigKeySpec Range(ConfigKeySpec s, double min, double max) {
  s.min = min;
  s.max = max;
  return s;
}

ConfigKeySpec OneOf(ConfigKeySpec s, std::vector<std::string> allowed) {
  s.allowed = std::move(allowed);
  return s;
}

ConfigKeySpec Secret(ConfigKeySpec s) {
  s.secret = true;
  return s;
}

// Finds deployment/environments/<env>.yml from the working directory up,
// then /etc/devstream/<env>.yml.
std::optional<std::string> EnvironmentFile(const std::string& env) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::path dir = fs::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    fs::path f = dir / "deployment" / "environments" / (env + ".yml");
    if (fs::exists(f, ec)) return f.string();
    if (dir == dir.parent_path()) break;
  }
  fs::path etc = fs::path("/etc/devstream") / (env + ".yml");
  if (fs::exists(etc, ec)) return etc.string();
  return std::nullopt;
}

std::optional<std::string> NonEmpty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

}  // namespace

const std::vector<ConfigKeySpec>& SettingsSchema() {
  static const std::vector<ConfigKeySpec> schema = {
      OneOf(Key("environment", T::kEnum, "development",
                "Which deployment/environments/<name>.yml applies; production adds start-up "
                "refusals",
                {"DEVSTREAM_ENV"}),
            {"development", "staging", "production"}),
      Key("database.path", T::kString, "",
          "SQLite file (empty: $XDG_DATA_HOME/devstream/devstream.db or "
          "~/.local/share/devstream/devstream.db)",
          {"DEVSTREAM_DATABASE_PATH"}),
      Range(Key("database.reader_pool", T::kInt, "10", "Read-only connections of a server",
                {"DEVSTREAM_DATABASE_READER_POOL"}),
            1, 256),
      Range(Key("database.busy_timeout_ms", T::kInt, "5000",
                "How long a connection waits for another process's lock"),
            0, 600000),
      Key("server.host", T::kString, "127.0.0.1", "Address to listen on", {"DEVSTREAM_HOST"}),
      Range(
          Key("server.port", T::kInt, "8000", "TCP port (0 picks a free one)", {"DEVSTREAM_PORT"}),
          0, 65535),
      Range(Key("server.threads", T::kInt, "4", "HTTP io threads", {"DEVSTREAM_THREADS"}), 1, 256),
      Range(Key("server.body_limit_bytes", T::kInt, "1048576", "Largest request body (else 413)"),
            1024, 256 << 20),
      Range(Key("server.header_limit_bytes", T::kInt, "16384",
                "Largest request header block (else 431)"),
            1024, 1 << 20),
      Range(Key("server.request_timeout_s", T::kInt, "120",
                "Deadline to read a body or write a response"),
            1, 3600),
      Range(Key("server.idle_timeout_s", T::kInt, "30",
                "Keep-alive idle limit, and the deadline for a header block (slowloris)"),
            1, 3600),
      Range(Key("server.max_connections", T::kInt, "50",
                "Open connections beyond which new ones get 503", {"DEVSTREAM_MAX_CONNECTIONS"}),
            1, 100000),
      Range(Key("server.drain_timeout_s", T::kInt, "30",
                "On SIGTERM, how long in-flight requests may take to finish before their "
                "connections are closed"),
            1, 3600),
      OneOf(
          Key("service.mode", T::kEnum, "all",
              "api (HTTP only), task_engine (worker only), all (both)", {"DEVSTREAM_SERVICE_MODE"}),
          {"api", "task_engine", "all"}),
      OneOf(Key("logging.level", T::kEnum, "info", "Least severe log level written",
                {"DEVSTREAM_LOG_LEVEL"}),
            {"trace", "debug", "info", "warn", "error", "off"}),
      OneOf(Key("logging.format", T::kEnum, "json", "json (one object per line) or text",
                {"DEVSTREAM_LOG_FORMAT"}),
            {"json", "text"}),
      Key("logging.file", T::kString, "", "Also write the log to this file (rotated)",
          {"DEVSTREAM_LOG_FILE"}),
      Range(Key("logging.max_size_mb", T::kInt, "10", "Rotate the log file at this size"), 1,
            10240),
      Range(Key("logging.max_files", T::kInt, "5", "Rotated log files kept"), 1, 100),
      Key("logging.stderr", T::kBool, "true", "Write the log to stderr"),
      Key("logging.access_log", T::kBool, "true", "One line per HTTP request"),
      Secret(Key("security.secret_key", T::kString, "",
                 "Secret for signatures; production requires at least 32 bytes",
                 {"DEVSTREAM_SECRET_KEY"})),
      OneOf(Key("memory.embedding.provider", T::kEnum, "hash",
                "hash (built in), ollama or openai (any OpenAI-compatible server)",
                {"DEVSTREAM_EMBEDDING_PROVIDER"}),
            {"hash", "ollama", "openai"}),
      Key("memory.embedding.url", T::kString, "",
          "Embedding server (empty: the provider's default, or OLLAMA_HOST for ollama)",
          {"DEVSTREAM_EMBEDDING_URL"}),
      Key("memory.embedding.model", T::kString, "", "Model name (empty: the provider's default)",
          {"DEVSTREAM_EMBEDDING_MODEL"}),
      Range(Key("memory.embedding.dim", T::kInt, "",
                "Vector dimension (empty: the provider's default)", {"DEVSTREAM_EMBEDDING_DIM"}),
            8, 8192),
      Secret(Key("memory.embedding.api_key", T::kString, "",
                 "API key for the embedding server (openai: also OPENAI_API_KEY)",
                 {"DEVSTREAM_EMBEDDING_API_KEY"})),
      Range(
          Key("memory.index.hnsw_threshold", T::kInt, "50000",
              "Vectors per project before the HNSW graph takes over", {"DEVSTREAM_HNSW_THRESHOLD"}),
          1000, 1099511627776.0),
      Range(Key("memory.index.hnsw_m", T::kInt, "16", "HNSW links per node", {"DEVSTREAM_HNSW_M"}),
            4, 128),
      Range(Key("memory.index.hnsw_ef_construction", T::kInt, "200", "HNSW build beam width",
                {"DEVSTREAM_HNSW_EF_CONSTRUCTION"}),
            10, 4096),
      Range(Key("memory.index.hnsw_ef_search", T::kInt, "200", "HNSW query beam width",
                {"DEVSTREAM_HNSW_EF_SEARCH"}),
            10, 4096),
      Key("memory.index.int8_scan", T::kBool, "false",
          "Flat partitions scan int8 copies and re-rank in float", {"DEVSTREAM_VECTOR_INT8"}),
      Range(Key("worker.job_lease_ms", T::kInt, "60000", "Lease of a running job",
                {"DEVSTREAM_JOB_LEASE_MS"}),
            1000, 86400000),
      Range(Key("worker.poll_ms", T::kInt, "250", "Idle wait between job claims",
                {"DEVSTREAM_WORKER_POLL_MS"}),
            10, 60000),
      Range(Key("worker.heartbeat_ms", T::kInt, "5000",
                "Worker heartbeat (at most 5 s: /health calls a worker gone after 15 s)",
                {"DEVSTREAM_WORKER_HEARTBEAT_MS"}),
            100, 5000),
      Range(Key("worker.backoff_ms", T::kInt, "1000", "Base of a failed job's exponential backoff",
                {"DEVSTREAM_JOB_BACKOFF_MS"}),
            0, 3600000),
      Key("worker.schedule", T::kString, "",
          "Periodic job intervals over the defaults, KIND=SECONDS[,…] (0 disables): "
          "lease_reaper=15,rollup=600,retention=86400,backup=86400",
          {"DEVSTREAM_SCHEDULE"}),
      Key("backup.dir", T::kString, "", "Backup directory (empty: <database>.backups)",
          {"DEVSTREAM_BACKUP_DIR"}),
      Range(
          Key("backup.keep", T::kInt, "7", "Newest backups always kept", {"DEVSTREAM_BACKUP_KEEP"}),
          1, 1000),
      Range(Key("backup.keep_days", T::kInt, "30",
                "Backups older than this (beyond the newest backup.keep) are pruned",
                {"DEVSTREAM_BACKUP_KEEP_DAYS"}),
            1, 36500),
      Range(Key("retention.max_age_days", T::kInt, "180",
                "Memories neither created nor retrieved for this long may be archived",
                {"DEVSTREAM_RETENTION_DAYS"}),
            1, 36500),
      Range(Key("retention.max_relevance", T::kDouble, "0.5",
                "Only memories scored at most this are archived (new ones score 0.5)",
                {"DEVSTREAM_RETENTION_MAX_RELEVANCE"}),
            0, 1),
      Key("security.auth_enabled", T::kBool, "false",
          "Require an API key (Authorization: Bearer) on every route but /health*, "
          "/openapi.json and /metrics (admin key or allowed address); production requires it",
          {"DEVSTREAM_AUTH_ENABLED"}),
      Key("security.cors_origins", T::kList, "",
          "Browser origins allowed cross-origin access (empty: CORS off)",
          {"DEVSTREAM_CORS_ORIGINS"}),
      Key("security.trusted_proxies", T::kList, "",
          "Peer addresses whose X-Forwarded-For is believed (e.g. nginx)",
          {"DEVSTREAM_TRUSTED_PROXIES"}),
      Key("security.allowed_hosts", T::kList, "",
          "Host header values served (empty: any); others get 400", {"DEVSTREAM_ALLOWED_HOSTS"}),
      Range(Key("security.rate_limit_per_minute", T::kInt, "0",
                "Requests per minute per client address (0: no limit)",
                {"DEVSTREAM_RATE_LIMIT_PER_MINUTE"}),
            0, 1000000),
      Range(Key("security.rate_limit_burst", T::kInt, "100",
                "Requests a client may make at once before the rate applies",
                {"DEVSTREAM_RATE_LIMIT_BURST"}),
            1, 1000000),
      Key("metrics.allowed_addresses", T::kList, "127.0.0.1,::1",
          "Client addresses allowed to read /metrics", {"DEVSTREAM_METRICS_ALLOWED"}),
      Key("mcp.allowed_origins", T::kList, "",
          "Origins besides loopback allowed to call /mcp (browser clients)",
          {"DEVSTREAM_MCP_ALLOWED_ORIGINS"}),
  };
  return schema;
}

const std::vector<std::string>& ClientEnvironmentVariables() {
  static const std::vector<std::string> vars = {
      "DEVSTREAM_URL",        "DEVSTREAM_PROJECT",
      "DEVSTREAM_HOOK_LOG",   "DEVSTREAM_HOOK_TIMEOUT_MS",
      "DEVSTREAM_CONFIG",     "DEVSTREAM_PREVIOUS_EMBEDDING_API_KEY",
      "DEVSTREAM_SQLITE_VEC", "DEVSTREAM_API_KEY"};
  return vars;
}

Result<Settings> LoadSettings(const SettingsOptions& o) {
  std::map<std::string, std::string> env = o.env ? *o.env : ProcessEnvironment();
  Settings s;
  // Which environment, hence which file: --env, else DEVSTREAM_ENV.
  std::string environment = "development";
  bool env_named = false;
  if (o.environment) {
    environment = *o.environment;
    env_named = true;
  } else if (auto it = env.find("DEVSTREAM_ENV"); it != env.end() && !it->second.empty()) {
    environment = it->second;
    env_named = true;
  }
  const auto& envs = SettingsSchema().front().allowed;
  if (std::find(envs.begin(), envs.end(), environment) == envs.end()) {
    return Status::InvalidArgument("environment \"" + environment +
                                   "\" is not one of development, staging, production")
        .WithDetail("field", "environment");
  }
  ConfigSources sources;
  sources.env = env;
  sources.flags = o.flags;
  if (!o.flags.count("environment") && o.environment) sources.flags["environment"] = environment;
  if (o.config_file) {
    sources.file = *o.config_file;
  } else if (auto it = env.find("DEVSTREAM_CONFIG"); it != env.end() && !it->second.empty()) {
    sources.file = it->second;
  } else if (env_named) {
    sources.file = EnvironmentFile(environment);
    if (!sources.file) {
      return Status::InvalidArgument("environment " + environment +
                                     ": no deployment/environments/" + environment +
                                     ".yml above the working directory and no /etc/devstream/" +
                                     environment + ".yml (or name one with --config)");
    }
  }
  DS_ASSIGN_OR_RETURN(s.config, Config::Load(SettingsSchema(), sources));
  const Config& c = s.config;
  s.environment = c.String("environment");
  s.config_file = sources.file.value_or("");
  s.database_path =
      c.String("database.path").empty() ? DefaultDatabasePath() : c.String("database.path");
  s.reader_pool = static_cast<int>(c.Int("database.reader_pool"));
  s.busy_timeout_ms = static_cast<int>(c.Int("database.busy_timeout_ms"));
  s.host = c.String("server.host");
  if (s.host.empty()) {
    return Status::InvalidArgument("server.host must not be empty")
        .WithDetail("field", "server.host");
  }
  s.port = static_cast<uint16_t>(c.Int("server.port"));
  s.threads = static_cast<int>(c.Int("server.threads"));
  s.body_limit = static_cast<size_t>(c.Int("server.body_limit_bytes"));
  s.header_limit = static_cast<size_t>(c.Int("server.header_limit_bytes"));
  s.request_timeout_s = static_cast<int>(c.Int("server.request_timeout_s"));
  s.idle_timeout_s = static_cast<int>(c.Int("server.idle_timeout_s"));
  s.max_connections = static_cast<int>(c.Int("server.max_connections"));
  s.drain_timeout_s = static_cast<int>(c.Int("server.drain_timeout_s"));
  s.service_mode = c.String("service.mode");
  s.log.level = c.String("logging.level");
  s.log.format = c.String("logging.format");
  s.log.file = c.String("logging.file");
  s.log.max_size_bytes = static_cast<size_t>(c.Int("logging.max_size_mb")) << 20;
  s.log.max_files = static_cast<size_t>(c.Int("logging.max_files"));
  s.log.to_stderr = c.Bool("logging.stderr");
  s.access_log = c.Bool("logging.access_log");
  s.secret_key = c.String("security.secret_key");
  s.auth_enabled = c.Bool("security.auth_enabled");

  memory::EmbedderSettings es;
  es.provider = c.String("memory.embedding.provider");
  es.url = NonEmpty(c.String("memory.embedding.url"));
  es.model = NonEmpty(c.String("memory.embedding.model"));
  es.api_key = NonEmpty(c.String("memory.embedding.api_key"));
  if (auto it = env.find("OLLAMA_HOST"); it != env.end() && !it->second.empty()) {
    es.ollama_host = it->second;
  }
  if (auto it = env.find("OPENAI_API_KEY"); it != env.end() && !it->second.empty()) {
    es.openai_api_key = it->second;
  }
  if (c.Has("memory.embedding.dim") && c.Int("memory.embedding.dim") > 0) {
    es.dim = static_cast<int>(c.Int("memory.embedding.dim"));
  }
  DS_ASSIGN_OR_RETURN(s.embedder, memory::ResolveEmbedderConfig(es));
  s.index.hnsw_threshold = static_cast<size_t>(c.Int("memory.index.hnsw_threshold"));
  s.index.hnsw.m = static_cast<int>(c.Int("memory.index.hnsw_m"));
  s.index.hnsw.ef_construction = static_cast<int>(c.Int("memory.index.hnsw_ef_construction"));
  s.index.hnsw.ef_search = static_cast<int>(c.Int("memory.index.hnsw_ef_search"));
  s.index.int8_scan = c.Bool("memory.index.int8_scan");

  s.worker.mode = s.service_mode;
  s.worker.lease_ms = c.Int("worker.job_lease_ms");
  s.worker.poll_ms = c.Int("worker.poll_ms");
  s.worker.heartbeat_ms = c.Int("worker.heartbeat_ms");
  s.backoff.base_ms = c.Int("worker.backoff_ms");
  if (s.worker.heartbeat_ms * 2 > s.worker.lease_ms) {
    return Status::InvalidArgument("worker.heartbeat_ms (" + std::to_string(s.worker.heartbeat_ms) +
                                   ") must be at most half of worker.job_lease_ms (" +
                                   std::to_string(s.worker.lease_ms) +
                                   "), or a running job's lease can expire between heartbeats")
        .WithDetail("field", "worker.heartbeat_ms");
  }
  DS_ASSIGN_OR_RETURN(s.schedules, engine::DefaultSchedules(c.String("worker.schedule")));
  s.engine.backup_dir =
      c.String("backup.dir").empty() ? s.database_path + ".backups" : c.String("backup.dir");
  s.engine.backup_keep = static_cast<int>(c.Int("backup.keep"));
  s.engine.backup_keep_days = static_cast<int>(c.Int("backup.keep_days"));
  s.engine.retention.max_age_days = static_cast<int>(c.Int("retention.max_age_days"));
  s.engine.retention.max_relevance = c.Double("retention.max_relevance");
  s.mcp_allowed_origins = c.List("mcp.allowed_origins");
  s.metrics_allowed = c.List("metrics.allowed_addresses");
  s.guard.trusted_proxies = c.List("security.trusted_proxies");
  s.guard.allowed_hosts = c.List("security.allowed_hosts");
  s.guard.rate_per_minute = static_cast<int>(c.Int("security.rate_limit_per_minute"));
  s.guard.burst = static_cast<int>(c.Int("security.rate_limit_burst"));
  s.guard.cors_origins = c.List("security.cors_origins");
  return s;
}

bool ListensBeyondLoopback(const Settings& s) {
  return !(s.host == "127.0.0.1" || s.host == "::1" || s.host == "localhost");
}

std::vector<std::string> ProductionRefusals(const Settings& s, int pending_migrations) {
  std::vector<std::string> out;
  if (s.environment != "production") return out;
  if (s.secret_key.size() < 32) {
    out.push_back("security.secret_key must be at least 32 bytes in production (" +
                  std::to_string(s.secret_key.size()) + " given; DEVSTREAM_SECRET_KEY)");
  }
  if (pending_migrations > 0) {
    out.push_back(std::to_string(pending_migrations) +
                  " migration(s) pending: run `devstream migrate up` first (production never "
                  "migrates on start)");
  }
  if (!s.auth_enabled) {
    out.push_back(
        "security.auth_enabled is false: production requires API keys "
        "(DEVSTREAM_AUTH_ENABLED=true; create keys with `devstream apikey create`)");
    if (ListensBeyondLoopback(s)) {
      out.push_back("server.host " + s.host +
                    " is beyond loopback without authentication: anyone who can reach it could "
                    "read and change every project");
    }
  }
  return out;
}

}  // namespace ds::app
