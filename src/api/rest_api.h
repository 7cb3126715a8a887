// The REST adapter: registers /api/v1 routes (projects, plans, phases, tasks,
// dependencies, transitions, ready list, graph, events) plus /health*,
// /version and /openapi.json on a Router. Handlers only translate HTTP
// (query strings, headers such as If-Match and X-DevStream-Project, status
// codes) to TaskService calls; all rules live in the service.
// Thread-safety: handlers are safe to run concurrently (the service is).
#pragma once

#include <string>

#include "api/router.h"
#include "engine/task_workflow.h"
#include "store/database.h"
#include "tasks/task_service.h"

namespace ds::api {

struct RestContext {
  Database& db;
  tasks::TaskService& tasks;
  engine::TaskWorkflow& workflow;  // transitions (completion memories), task context
  std::string started_at;
};

void RegisterRestRoutes(Router& router, RestContext& ctx);

// The OpenAPI 3.1 document served at /openapi.json (embedded at build time).
const std::string& OpenApiDocument();

}  // namespace ds::api
