// Health of a running server in the seed's shape: /health answers
// {status, timestamp, version, components: {database, memory, tasks, disk}},
// each component {status, response_time_ms, error?, ...details}.
//   database  a read and a write transaction (a read-only or locked file is
//             unhealthy)
//   memory    index loaded, and the embedder answers (probed at most every
//             30 s; a failing embedder is degraded: search still answers by
//             keyword)
//   tasks     degraded when no worker of any process heartbeated in 15 s
//   disk      free space where the database lives: degraded under 1 GiB or
//             5 %, unhealthy under 100 MiB
// Overall: unhealthy (HTTP 503) when the database or the disk is unhealthy,
// degraded (200) when any component is degraded, else healthy (200).
// /health/live answers while the process runs; /health/ready once migrated
// and the index is loaded (workers are ignored, so containers never wait on
// each other).
// Thread-safety: Check may run concurrently; the embedder probe is cached
// under a mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "api/router.h"
#include "core/json.h"
#include "memory/embedder.h"
#include "store/database.h"

namespace ds::api {

class HealthCheck {
 public:
  HealthCheck(Database& db, memory::Embedder& embedder);
  // Called once the vector index is loaded (or when the process has none).
  void SetReady() { ready_ = true; }
  bool ready() const { return ready_; }

  // The /health body and its HTTP status.
  std::pair<json::object, int> Check();

 private:
  json::object CheckDatabase();
  json::object CheckMemory();
  json::object CheckTasks();
  json::object CheckDisk();

  Database& db_;
  memory::Embedder& embedder_;
  std::atomic<bool> ready_{false};
  std::mutex probe_mu_;
  std::chrono::steady_clock::time_point probed_at_{};
  std::string probe_error_;  // "" when the last probe succeeded
};

void RegisterHealthRoutes(Router& router, HealthCheck& health);

}  // namespace ds::api
