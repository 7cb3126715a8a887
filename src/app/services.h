// Services is everything one process runs on a database, built in one place
// so `serve`, `worker` and the CLI wire the same objects the same way: the
// migrated Database, the embedder from the environment, TaskService,
// MemoryService, the JobQueue, TaskWorkflow and SessionService. A memory
// stored while the embedder fails queues an `embed_memory` job.
// The vector index is not loaded here (LoadIndex when a command searches).
// Thread-safety: the services are thread-safe; Services itself is built once.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "app/settings.h"
#include "core/status.h"
#include "engine/job_queue.h"
#include "engine/session_service.h"
#include "engine/task_workflow.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "store/database.h"
#include "tasks/task_service.h"

namespace ds::app {

struct Services {
  Settings settings;
  std::unique_ptr<Database> db;
  std::unique_ptr<memory::Embedder> embedder;
  std::unique_ptr<tasks::TaskService> tasks;
  std::unique_ptr<memory::MemoryService> memory;
  std::unique_ptr<engine::JobQueue> jobs;
  std::unique_ptr<engine::TaskWorkflow> workflow;
  std::unique_ptr<engine::SessionService> sessions;
};

// Usage errors (bad settings) are InvalidArgument. `reader_pool` overrides
// database.reader_pool (commands need fewer readers than a server).
Result<std::unique_ptr<Services>> OpenServices(const Settings& settings,
                                               std::optional<int> reader_pool = std::nullopt);
// Settings from the defaults and the environment, with the database at
// `db_path` when it is not empty (tools, tests, one-shot commands).
Result<std::unique_ptr<Services>> OpenServices(const std::string& db_path, int reader_pool = 4);

}  // namespace ds::app
