// Prometheus metrics of a server, in the text exposition format (via
// core/metric_registry.h) at GET /metrics:
//   devstream_http_requests_total{method,route,status}
//   devstream_http_request_duration_seconds{method,route}       histogram
//   devstream_search_duration_seconds{stage=embed|keyword|vector|fusion|total}
//   devstream_search_degraded_total, devstream_embedder_errors_total
//   devstream_memories{project}, devstream_vectors{project}   (live ones)
//   devstream_tasks{status}, devstream_jobs{state}, devstream_job_queue_age_seconds
//   devstream_workers_live, devstream_worker_heartbeat_age_seconds
//   devstream_database_bytes, devstream_wal_bytes
//   devstream_last_backup_timestamp_seconds, devstream_build_info{version}
// Gauges read the database when scraped. /metrics answers an admin API key
// not bound to a project, or a client whose address is in `allowed`
// (loopback by default; behind a proxy, nginx keeps /metrics private as
// well); others get 403.
// Thread-safety: Observe* and Scrape may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/router.h"
#include "memory/model.h"
#include "store/database.h"

namespace ds::api {

class Metrics {
 public:
  explicit Metrics(Database& db);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void ObserveRequest(const std::string& method, const std::string& route, int status,
                      double seconds);
  void ObserveSearch(const memory::SearchResult& result);
  // The exposition text (gauges refreshed from the database first).
  std::string Scrape();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const uint64_t id_;  // unique per instance, for ObserveRequest's per-thread cache
};

void RegisterMetricsRoute(Router& router, Metrics& metrics, std::vector<std::string> allowed);

}  // namespace ds::api
