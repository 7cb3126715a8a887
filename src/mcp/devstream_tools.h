// DevStream's MCP tools: thin adapters over the same services the REST API
// uses, with the original project's names so existing prompts keep working
// (devstream_list_tasks, devstream_create_task, devstream_update_task,
// devstream_list_plans, devstream_store_memory, devstream_search_memory) plus
// devstream_create_plan, devstream_next_task, devstream_get_context and
// devstream_forget_memory. Input and output schemas come from the OpenAPI
// document's components; every tool answers a short text for the model and
// structuredContent matching its outputSchema.
// Thread-safety: the tools may run concurrently (the services are).
#pragma once

#include "engine/task_workflow.h"
#include "mcp/protocol.h"
#include "memory/memory_service.h"
#include "tasks/task_service.h"

namespace ds::mcp {

struct ToolServices {
  tasks::TaskService& tasks;
  memory::MemoryService& memory;
  engine::TaskWorkflow& workflow;
};

// The registry references `services`, which must outlive it.
ToolRegistry DevStreamTools(ToolServices& services);

}  // namespace ds::mcp
