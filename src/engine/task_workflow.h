// TaskWorkflow joins the task system to memory, so tasks and memories form
// one graph (DESIGN.md §6): a task that completes leaves a memory linked to it
// (type `learning` for analysis, research and review tasks, `output`
// otherwise) built from its title, notes, outcome note, output files and
// acceptance criteria; and a task can be shown with the memories most
// relevant to it. Adapters (REST, MCP, CLI) move tasks through this class
// rather than TaskService directly, so the rule is written once.
//
// The completion memory is written right after the completing transaction;
// if that fails (or the process dies in between) the periodic `rollup` job's
// BackfillCompletionMemories writes it later. Writing it twice is harmless:
// the content is deterministic and memories are deduplicated by content.
// Thread-safety: thread-safe (the services are).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "memory/memory_service.h"
#include "tasks/task_service.h"

namespace ds::engine {

class TaskWorkflow {
 public:
  TaskWorkflow(tasks::TaskService& tasks, memory::MemoryService& memory);

  // TaskService::Transition, then the completion memory when the task
  // completed. A failure to store the memory does not fail the transition.
  Result<tasks::Task> Transition(const std::string& id, const tasks::TransitionInput& input);
  Result<std::optional<tasks::Task>> Claim(const tasks::ClaimInput& input);

  // Stores (or finds) the completion memory of a completed task.
  Result<memory::StoreResult> RecordCompletion(const tasks::Task& task, const std::string& note);
  // Tasks completed in the last 24 hours without a completion memory get
  // one (older ones are left alone: their memory may have been deleted on
  // purpose). Returns how many.
  Result<int64_t> BackfillCompletionMemories(int limit = 500);

  // The `limit` memories most relevant to the task (hybrid search over its
  // title, description and files, in its project), its own completion memory
  // excluded. Search access counts are not bumped.
  Result<std::vector<memory::SearchHit>> RelevantMemories(const tasks::Task& task, int limit = 5);

  tasks::TaskService& tasks() { return tasks_; }
  memory::MemoryService& memory() { return memory_; }

 private:
  tasks::TaskService& tasks_;
  memory::MemoryService& memory_;
};

// The deterministic text of a completed task's memory.
std::string CompletionMemoryText(const tasks::Task& task, const std::string& note);

}  // namespace ds::engine
