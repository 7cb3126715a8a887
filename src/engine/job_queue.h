// JobQueue is the durable job queue of DESIGN.md §6, kept in the `jobs` table
// so that every process on the database (API replicas, workers, the CLI)
// shares it.
//
// Lifecycle: queued -> running (claimed with a lease by one worker) -> done;
// a failed attempt goes back to queued with run_at pushed out by exponential
// backoff with jitter, and to `dead` (the dead letter, last error kept) once
// `attempts` reaches `max_attempts`; a permanent error (bad payload) goes to
// `failed` at once. A running job whose lease expired (its worker died) is
// queued again: delivery is at-least-once, so handlers are idempotent.
// Invariants: at most one queued-or-running job per dedup_key; only the lease
// owner may complete or fail a running job.
// Thread-safety: thread-safe; every method is one transaction on Database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "store/database.h"

namespace ds::engine {

struct Job {
  std::string id;
  std::string kind;
  std::string payload = "{}";  // a JSON object
  std::string state = "queued";
  int priority = 5;
  int attempts = 0;
  int max_attempts = 5;
  std::string run_at;
  std::optional<std::string> lease_owner, lease_expires_at, last_error, dedup_key;
  std::string created_at, updated_at;
  std::optional<std::string> finished_at;
};

struct EnqueueOptions {
  std::optional<std::string> dedup_key;  // joins a queued/running job with the same key
  int priority = 5;                      // higher runs first among due jobs
  int max_attempts = 5;
  int64_t delay_ms = 0;
};

struct EnqueueResult {
  Job job;
  bool deduplicated = false;  // an equivalent job was already queued or running
};

struct JobFilter {
  std::optional<std::string> state, kind;
  int limit = 50;
  std::optional<std::string> cursor;
};

struct JobPage {
  std::vector<Job> items;
  std::optional<std::string> next_cursor;
};

// Exponential backoff with jitter: attempt n waits base * 2^(n-1), capped,
// scaled by a random factor in [0.5, 1].
struct Backoff {
  int64_t base_ms = 1000;
  int64_t max_ms = 5 * 60 * 1000;
  int64_t DelayMs(int attempts) const;
};

const std::vector<std::string_view>& JobStates();

class JobQueue {
 public:
  explicit JobQueue(Database& db, Backoff backoff = {});

  Result<EnqueueResult> Enqueue(const std::string& kind, const json::object& payload,
                                const EnqueueOptions& options = {});
  // The same inside a caller's write transaction (so a job is queued
  // atomically with the change that needs it).
  static Result<EnqueueResult> EnqueueIn(Connection& c, const std::string& kind,
                                         const json::object& payload,
                                         const EnqueueOptions& options = {});

  // Takes the most urgent due job among `kinds` (all kinds when empty),
  // counting the attempt and leasing it to `worker` for `lease_ms`. First
  // requeues every job whose lease expired (as RequeueExpired), so a job of
  // a killed worker never stays 'running' while any worker polls.
  Result<std::optional<Job>> Claim(const std::string& worker, int64_t lease_ms,
                                   const std::vector<std::string>& kinds = {});
  // Extends the lease of a running job this worker holds.
  Status Extend(const std::string& id, const std::string& worker, int64_t lease_ms);
  Status Complete(const std::string& id, const std::string& worker);
  // A failed attempt: retried after backoff, or dead once attempts are used
  // up; `permanent` skips the retries (state failed).
  Result<Job> Fail(const std::string& id, const std::string& worker, const std::string& error,
                   bool permanent = false);
  // Gives a running job back without counting the attempt (the worker is
  // draining and the handler stopped early): queued again, due now.
  Status Release(const std::string& id, const std::string& worker);
  // Running jobs whose lease expired go back to queued (due now). Returns them.
  Result<std::vector<std::string>> RequeueExpired();

  Result<Job> Get(const std::string& id);
  Result<JobPage> List(const JobFilter& filter);
  // A dead or failed job back to queued with its attempts reset.
  Result<Job> Retry(const std::string& id);
  // Jobs per state, and the age in seconds of the oldest due queued job.
  struct Counts {
    int64_t queued = 0, running = 0, done = 0, failed = 0, dead = 0;
    double oldest_queued_age_s = 0;
  };
  Result<Counts> Stats();
  // Deletes done jobs finished more than `older_than_ms` ago.
  Result<int64_t> PruneFinished(int64_t older_than_ms);

 private:
  Database& db_;
  Backoff backoff_;
};

json::object ToJson(const Job& job);

}  // namespace ds::engine
