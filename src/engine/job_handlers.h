// The handlers of the standard job kinds (DESIGN.md §6), registered on a
// Worker. Every handler is idempotent: running a job twice leaves the same
// state as running it once.
//   embed_memory     memories lacking a current-model vector get one
//   reembed_all      the same after a model change (whole database)
//   backup           consistent online copy to <backup_dir>/payload.name, or
//                    (scheduled) <backup_dir>/devstream-<job id>.db keeping
//                    the newest `backup_keep` of those; never outside
//                    backup_dir
//   retention        archive stale memories (RetentionPolicy), FTS optimize
//   lease_reaper     expired task leases back to pending (or failed), expired
//                    job leases back to queued, old finished jobs and the
//                    rows of workers silent for an hour pruned
//   rollup           phase/plan roll-ups recomputed, missing completion
//                    memories written
//   session_summary  payload.session_id: the session's summary memory
// Thread-safety: the handlers may run concurrently in several workers.
#pragma once

#include <string>
#include <vector>

#include "core/json.h"
#include "engine/job_queue.h"
#include "engine/session_service.h"
#include "engine/task_workflow.h"
#include "engine/worker.h"
#include "memory/memory_service.h"
#include "store/database.h"
#include "tasks/task_service.h"

namespace ds::engine {

struct EngineSettings {
  std::string backup_dir;     // default: "<database path>.backups"
  int backup_keep = 7;        // newest backups always kept
  int backup_keep_days = 30;  // older ones beyond those are deleted
  memory::RetentionPolicy retention;
  int64_t keep_finished_jobs_ms = 7LL * 86'400'000;
};

struct EngineServices {
  Database& db;
  JobQueue& jobs;
  TaskWorkflow& workflow;
  SessionService& sessions;
  EngineSettings settings;
};

void RegisterJobHandlers(Worker& worker, EngineServices& services);
// The kinds RegisterJobHandlers registers, sorted.
const std::vector<std::string>& StandardJobKinds();
// Checks a payload before it is queued (InvalidArgument naming the field):
// backup {name?: file name}, retention {optimize?: bool}, session_summary
// {session_id}, the other kinds {}.
Status ValidateJobPayload(const std::string& kind, const json::object& payload);

}  // namespace ds::engine
