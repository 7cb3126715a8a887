// REST routes of the task engine (DESIGN.md §6/§7): claiming tasks with
// leases (/tasks/claim, /tasks/{id}/heartbeat), the durable job queue
// (/jobs) and work sessions (/sessions). Thin: decoding, status codes and
// JSON shapes only; the rules live in TaskWorkflow, JobQueue, SessionService.
// Thread-safety: handlers may run concurrently.
#pragma once

#include <string>
#include <vector>

#include "api/router.h"
#include "engine/job_queue.h"
#include "engine/session_service.h"
#include "engine/task_workflow.h"

namespace ds::api {

struct EngineContext {
  engine::TaskWorkflow& workflow;
  engine::JobQueue& jobs;
  engine::SessionService& sessions;
  std::vector<std::string> job_kinds;  // kinds POST /jobs may enqueue
};

void RegisterEngineRoutes(Router& router, EngineContext& ctx);

}  // namespace ds::api
