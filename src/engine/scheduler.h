// Scheduler enqueues the periodic job kinds (lease reaper, roll-ups,
// retention, backups) at their configured intervals, exactly once per due
// time across every worker on the database: the due time lives in
// job_schedules and a kind is enqueued only by the transaction that moves it
// forward (BEGIN IMMEDIATE serialises those transactions across processes).
// A kind is first due one interval after it is first scheduled, except those
// marked run_at_start.
// Thread-safety: Tick may be called from several threads and processes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "engine/job_queue.h"
#include "store/database.h"

namespace ds::engine {

struct Schedule {
  std::string kind;
  int64_t interval_ms = 0;  // 0 disables the kind
  bool run_at_start = false;
  int max_attempts = 3;
};

// The defaults: lease_reaper 15 s (due at start), rollup 10 min,
// retention 24 h, backup 24 h. `spec` overrides them, as in
// DEVSTREAM_SCHEDULE="lease_reaper=5,backup=0" (seconds; 0 disables).
Result<std::vector<Schedule>> DefaultSchedules(const std::string& spec = "");

class Scheduler {
 public:
  Scheduler(Database& db, std::vector<Schedule> schedules);
  // Enqueues every kind that is due; returns the ids of the jobs it created.
  Result<std::vector<std::string>> Tick();

 private:
  Database& db_;
  std::vector<Schedule> schedules_;
};

}  // namespace ds::engine
