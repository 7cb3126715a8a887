// Worker runs durable jobs from the JobQueue: the task engine of DESIGN.md §6
// (`devstream worker`, or embedded in `devstream serve` in mode `all`).
//
// One worker thread claims a due job (leased for lease_ms), runs its kind's
// handler and completes it, or fails it (retry with backoff, dead letter
// after max_attempts; InvalidArgument/Malformed/NotFound from a handler are
// permanent). A heartbeat thread keeps the worker's `workers` row and the
// running job's lease fresh. Stop() drains: no new claims, the running
// handler sees `stopping` and may return early through ctx.GiveBack(), which
// gives the job back (queued, attempt not counted); a job interrupted by a crash is
// queued again when its lease expires. Handlers must be idempotent.
// When a Scheduler is attached, the worker ticks it about once a second.
// Thread-safety: Register before Start; Start/Stop from one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/job_queue.h"
#include "engine/scheduler.h"
#include "store/database.h"

namespace ds::engine {

struct JobContext {
  const Job& job;
  json::object payload;
  const std::atomic<bool>& stopping;  // set when the worker drains
  bool given_back = false;            // set by GiveBack()

  // For a handler that stops early because the worker drains: the job goes
  // back to the queue without counting the attempt.
  Status GiveBack() {
    given_back = true;
    return Status::Unavailable("worker draining; job given back");
  }
};

using JobHandler = std::function<Status(JobContext&)>;

struct WorkerOptions {
  std::string mode = "task_engine";  // recorded in the workers row
  int64_t lease_ms = 60'000;         // a job's lease; renewed every heartbeat
  int64_t poll_ms = 250;             // idle wait between claims
  int64_t heartbeat_ms = 5'000;
};

class Worker {
 public:
  Worker(Database& db, JobQueue& queue, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Register(const std::string& kind, JobHandler handler);
  void AttachScheduler(Scheduler* scheduler) { scheduler_ = scheduler; }

  // Registers in `workers` and starts the threads.
  Status Start();
  // Drains (see above), deregisters and joins. Idempotent.
  void Stop();

  // Runs due jobs in the calling thread until none is due or `max_jobs` ran
  // (`devstream jobs run-once`); registers while it runs. Returns jobs run.
  Result<int> RunOnce(int max_jobs = 1000);

  const std::string& id() const { return id_; }
  std::vector<std::string> kinds() const;

 private:
  Status RegisterRow();
  void DeregisterRow();
  void Loop();
  void HeartbeatLoop();
  // Claims and runs one job; false when none was due.
  Result<bool> RunOne();
  void SetCurrent(const std::optional<std::string>& job_id, bool finished);

  Database& db_;
  JobQueue& queue_;
  WorkerOptions options_;
  std::string id_;
  std::map<std::string, JobHandler> handlers_;
  Scheduler* scheduler_ = nullptr;

  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::string> current_job_;  // guarded by mu_
  bool running_ = false;
  std::thread loop_, heartbeat_;
};

// Removes the rows of workers silent for `silent_ms` (crashed, never
// deregistered). Returns how many.
Result<int64_t> PruneDeadWorkers(Database& db, int64_t silent_ms);
// A worker heartbeats every 5 s at most; silent for three beats, it is gone
// (/health and /metrics count live workers by this).
inline constexpr int64_t kWorkerFreshMs = 15'000;

// Workers with a heartbeat newer than `fresh_ms` (for /health).
Result<int64_t> LiveWorkers(Database& db, int64_t fresh_ms);

}  // namespace ds::engine
