#include "api/metrics.h"

#include "store/api_keys.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>

#include "core/clock.h"
#include "core/metric_registry.h"
#include "engine/worker.h"

namespace ds::api {
namespace {

const std::vector<double> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

double FileBytes(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<double>(n);
}

}  // namespace

struct Metrics::Impl {
  explicit Impl(Database& database)
      : db(database),
        requests(registry.AddCounter("devstream_http_requests_total",
                                     "HTTP requests by method, route and status")),
        request_seconds(registry.AddHistogram("devstream_http_request_duration_seconds",
                                              "HTTP request latency by method and route",
                                              kLatencyBuckets)),
        search_seconds(registry.AddHistogram("devstream_search_duration_seconds",
                                             "Memory search latency by stage", kLatencyBuckets)),
        search_degraded(
            registry
                .AddCounter("devstream_search_degraded_total",
                            "Searches answered by keyword only because the embedder failed")
                .Add({})),
        embedder_errors(
            registry.AddCounter("devstream_embedder_errors_total", "Query embeddings that failed")
                .Add({})),
        memories(registry.AddGauge("devstream_memories",
                                   "Live memories (not archived, not superseded) per project")),
        vectors(registry.AddGauge("devstream_vectors", "Stored vectors per project (all models)")),
        tasks(registry.AddGauge("devstream_tasks", "Micro-tasks by status")),
        jobs(registry.AddGauge("devstream_jobs", "Jobs by state")),
        queue_age(
            registry.AddGauge("devstream_job_queue_age_seconds", "Age of the oldest due queued job")
                .Add({})),
        workers_live(
            registry.AddGauge("devstream_workers_live", "Workers with a heartbeat in the last 15 s")
                .Add({})),
        heartbeat_age(registry
                          .AddGauge("devstream_worker_heartbeat_age_seconds",
                                    "Age of the freshest worker heartbeat (-1: no worker)")
                          .Add({})),
        db_bytes(registry.AddGauge("devstream_database_bytes", "Size of the SQLite database file")
                     .Add({})),
        wal_bytes(
            registry.AddGauge("devstream_wal_bytes", "Size of the SQLite write-ahead log").Add({})),
        last_backup(registry
                        .AddGauge("devstream_last_backup_timestamp_seconds",
                                  "When the last successful backup job finished (0: never)")
                        .Add({})) {
    registry.AddGauge("devstream_build_info", "The running build")
        .Add({{"version", DEVSTREAM_VERSION}})
        .Set(1);
    for (const char* stage : {"embed", "keyword", "vector", "fusion", "total"}) {
      stage_histograms.push_back(&search_seconds.Add({{"stage", stage}}));
    }
  }

  void Refresh();

  Database& db;
  MetricRegistry registry;  // declared before the families it holds
  Family<Counter>& requests;
  Family<Histogram>& request_seconds;
  Family<Histogram>& search_seconds;
  std::vector<Histogram*> stage_histograms;
  Counter& search_degraded;
  Counter& embedder_errors;
  Family<Gauge>& memories;
  Family<Gauge>& vectors;
  Family<Gauge>& tasks;
  Family<Gauge>& jobs;
  Gauge& queue_age;
  Gauge& workers_live;
  Gauge& heartbeat_age;
  Gauge& db_bytes;
  Gauge& wal_bytes;
  Gauge& last_backup;
  std::mutex refresh_mu;
  std::string memory_counts_key;  // what the memory and vector gauges were counted at
};

void Metrics::Impl::Refresh() {
  std::lock_guard<std::mutex> lock(refresh_mu);
  auto set_grouped = [&](Connection& c, const char* sql, Family<Gauge>& f, const char* label,
                         const std::vector<std::string>& always) -> Status {
    std::map<std::string, double> values;
    for (const auto& k : always) values[k] = 0;
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      values[s.Text(0)] = static_cast<double>(s.Int(1));
    }
    for (const auto& [k, v] : values) f.Add({{label, k}}).Set(v);
    return Status::Ok();
  };
  // Unmapped: the counts walk every memory's index entries, and mapped those
  // pages (and their neighbours, faulted in around them) would stay resident.
  Status st = db.ReadUnmapped([&](Connection& c) -> Status {
    // The per-project counts visit every memory (0.1 s at 100k), so they are
    // recounted only when something they depend on moved: every write to
    // memories and vectors is in the change log, a restore bumps
    // user_version, and the labels are the project names.
    DS_ASSIGN_OR_RETURN(
        Stmt key_stmt,
        c.Prepare("SELECT (SELECT coalesce(max(seq), 0) FROM memory_changes) || '/' ||"
                  " (SELECT user_version FROM pragma_user_version) || '/' ||"
                  " (SELECT coalesce(group_concat(id || ':' || name, ','), '') FROM projects)"));
    DS_ASSIGN_OR_RETURN(bool key_row, key_stmt.Step());
    std::string key = key_row ? std::string(key_stmt.Text(0)) : std::string();
    if (key.empty() || key != memory_counts_key) {
      DS_RETURN_IF_ERROR(set_grouped(
          c,
          "SELECT p.name, count(m.id) FROM projects p LEFT JOIN semantic_memory m"
          " ON m.project_id = p.id AND m.archived = 0 AND m.superseded_by IS NULL GROUP BY p.id",
          memories, "project", {}));
      DS_RETURN_IF_ERROR(set_grouped(c,
                                     "SELECT p.name, count(v.memory_id) FROM projects p"
                                     " LEFT JOIN semantic_memory m ON m.project_id = p.id"
                                     " LEFT JOIN memory_vectors v ON v.memory_id = m.id"
                                     " GROUP BY p.id",
                                     vectors, "project", {}));
      memory_counts_key = key;
    }
    DS_RETURN_IF_ERROR(
        set_grouped(c, "SELECT status, count(*) FROM micro_tasks GROUP BY status", tasks, "status",
                    {"pending", "active", "completed", "failed", "skipped", "blocked"}));
    DS_RETURN_IF_ERROR(set_grouped(c, "SELECT state, count(*) FROM jobs GROUP BY state", jobs,
                                   "state", {"queued", "running", "done", "failed", "dead"}));
    std::string now = NowTimestamp();
    DS_ASSIGN_OR_RETURN(Stmt q, c.Prepare("SELECT min(run_at) FROM jobs WHERE state = 'queued'"
                                          " AND run_at <= ?"));
    q.Bind(1, now);
    DS_ASSIGN_OR_RETURN(bool qrow, q.Step());
    double age = 0;
    if (qrow && !q.IsNull(0)) {
      if (auto t = ParseTimestamp(q.Text(0))) age = std::max<double>(0, (NowMillis() - *t) / 1e3);
    }
    queue_age.Set(age);
    DS_ASSIGN_OR_RETURN(Stmt w, c.Prepare("SELECT count(*) FILTER (WHERE heartbeat_at >= ?),"
                                          " max(heartbeat_at) FROM workers"));
    w.Bind(1, FormatTimestamp(NowMillis() - engine::kWorkerFreshMs));
    DS_ASSIGN_OR_RETURN(bool wrow, w.Step());
    if (wrow) {
      workers_live.Set(static_cast<double>(w.Int(0)));
      double hb = -1;
      if (!w.IsNull(1)) {
        if (auto t = ParseTimestamp(w.Text(1))) hb = std::max<double>(0, (NowMillis() - *t) / 1e3);
      }
      heartbeat_age.Set(hb);
    }
    DS_ASSIGN_OR_RETURN(Stmt b, c.Prepare("SELECT max(finished_at) FROM jobs WHERE kind = 'backup'"
                                          " AND state = 'done'"));
    DS_ASSIGN_OR_RETURN(bool brow, b.Step());
    double when = 0;
    if (brow && !b.IsNull(0)) {
      if (auto t = ParseTimestamp(b.Text(0))) when = static_cast<double>(*t) / 1e3;
    }
    last_backup.Set(when);
    return Status::Ok();
  });
  (void)st;  // a failed refresh leaves the previous values; /health reports the database
  db_bytes.Set(FileBytes(db.path()));
  wal_bytes.Set(FileBytes(db.path() + "-wal"));
}

namespace {
// The request series each thread used last, per Metrics instance. Requests on
// one connection mostly repeat the route, and the lookup it saves builds two
// label maps (seven allocations) and takes each family's lock: one lock shared
// by every handler thread. Instance ids never repeat, so an entry of a
// destroyed Metrics is never used again.
std::atomic<uint64_t> next_metrics_id{1};

struct LastRequestSeries {
  uint64_t metrics_id = 0;
  int status = 0;
  std::string method, route;
  Counter* requests = nullptr;
  Histogram* seconds = nullptr;
};
thread_local LastRequestSeries last_request_series;
}  // namespace

Metrics::Metrics(Database& db)
    : impl_(std::make_unique<Impl>(db)), id_(next_metrics_id.fetch_add(1)) {}
Metrics::~Metrics() = default;

void Metrics::ObserveRequest(const std::string& method, const std::string& route, int status,
                             double seconds) {
  LastRequestSeries& last = last_request_series;
  if (last.metrics_id != id_ || last.status != status || last.method != method ||
      last.route != route) {
    last.requests = &impl_->requests.Add(
        {{"method", method}, {"route", route}, {"status", std::to_string(status)}});
    last.seconds = &impl_->request_seconds.Add({{"method", method}, {"route", route}});
    last.metrics_id = id_;
    last.status = status;
    last.method = method;
    last.route = route;
  }
  last.requests->Increment();
  last.seconds->Observe(seconds);
}

void Metrics::ObserveSearch(const memory::SearchResult& r) {
  double stages[] = {r.embed_ms, r.keyword_ms, r.vector_ms, r.fusion_ms, r.took_ms};
  for (size_t i = 0; i < impl_->stage_histograms.size(); ++i) {
    impl_->stage_histograms[i]->Observe(stages[i] / 1000.0);
  }
  if (r.degraded) {
    impl_->search_degraded.Increment();
    impl_->embedder_errors.Increment();
  }
}

std::string Metrics::Scrape() {
  impl_->Refresh();
  return impl_->registry.Serialize();
}

void RegisterMetricsRoute(Router& router, Metrics& metrics, std::vector<std::string> allowed) {
  auto handler = [&metrics, allowed](Request& req) -> Response {
    // Metrics span every project: an admin key not bound to one, or an
    // allowed address (Prometheus scraping from inside the network).
    bool admin = req.caller && (req.caller->scopes & kScopeAdmin) && req.caller->project_id.empty();
    if (!admin && std::find(allowed.begin(), allowed.end(), req.client_addr) == allowed.end()) {
      return ProblemResponse(
          Status::Forbidden("/metrics needs an admin API key or a client address in "
                            "metrics.allowed_addresses"),
          req);
    }
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.Scrape();
    return r;
  };
  router.Add("GET", "/metrics", handler, Access::kPublic);
}

}  // namespace ds::api
