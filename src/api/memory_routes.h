// REST adapter for the memory system: /api/v1/memories (store, batch, list,
// get, patch, delete, forget), /api/v1/search, /api/v1/context and
// /api/v1/memories/stats. Handlers translate HTTP to MemoryService calls.
// Thread-safety: handlers may run concurrently.
#pragma once

#include "api/router.h"
#include "memory/memory_service.h"

namespace ds::api {

void RegisterMemoryRoutes(Router& router, memory::MemoryService& memories);

}  // namespace ds::api
