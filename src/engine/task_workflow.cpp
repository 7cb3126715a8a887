#include "engine/task_workflow.h"

#include <iostream>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/log.h"
#include "store/database.h"

namespace ds::engine {
namespace {

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool IsLearningType(const std::string& task_type) {
  return task_type == "analysis" || task_type == "research" || task_type == "review";
}

}  // namespace

std::string CompletionMemoryText(const tasks::Task& t, const std::string& note) {
  std::string text = "Task completed: " + t.title + " (" + t.task_type + ", " + t.id + ")\n";
  if (!t.description.empty()) text += "Description: " + t.description + "\n";
  if (!t.notes.empty()) text += "Notes: " + t.notes + "\n";
  if (!note.empty()) text += "Outcome: " + note + "\n";
  if (!t.output_files.empty()) text += "Output files: " + JoinList(t.output_files) + "\n";
  if (!t.acceptance_criteria.empty()) {
    text += "Acceptance criteria: " + JoinList(t.acceptance_criteria) + "\n";
  }
  return text;
}

TaskWorkflow::TaskWorkflow(tasks::TaskService& tasks, memory::MemoryService& memory)
    : tasks_(tasks), memory_(memory) {}

Result<tasks::Task> TaskWorkflow::Transition(const std::string& id,
                                             const tasks::TransitionInput& input) {
  DS_ASSIGN_OR_RETURN(tasks::Task t, tasks_.Transition(id, input));
  if (t.status == "completed") {
    auto stored = RecordCompletion(t, input.note);
    if (!stored.ok()) {
      LogWarn("completion memory deferred to the rollup job",
              {{"task_id", id}, {"error", stored.status().message()}});
    }
  }
  return t;
}

Result<std::optional<tasks::Task>> TaskWorkflow::Claim(const tasks::ClaimInput& input) {
  return tasks_.Claim(input);
}

Result<memory::StoreResult> TaskWorkflow::RecordCompletion(const tasks::Task& t,
                                                           const std::string& note) {
  DS_ASSIGN_OR_RETURN(tasks::Plan plan, tasks_.GetPlan(t.plan_id));
  memory::MemoryInput in;
  in.project = plan.project_id;
  in.plan_id = t.plan_id;
  in.phase_id = t.phase_id;
  in.task_id = t.id;
  in.content = CompletionMemoryText(t, note);
  in.content_type = IsLearningType(t.task_type) ? "learning" : "output";
  in.source = "engine";
  in.keywords = t.output_files;
  if (in.keywords.size() > 50) in.keywords.resize(50);
  return memory_.Store(in);
}

// Only recent completions are backfilled: a completion memory someone
// deleted on purpose stays deleted.
constexpr int64_t kBackfillWindowMs = 24LL * 3600 * 1000;

Result<int64_t> TaskWorkflow::BackfillCompletionMemories(int limit) {
  // Completed tasks with no engine-made output/learning memory, and the note
  // of their last completion event.
  std::vector<std::pair<std::string, std::string>> missing;
  auto& db = memory_.database();
  DS_RETURN_IF_ERROR(db.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare("SELECT t.id, coalesce((SELECT e.note FROM task_events e WHERE"
                          " e.task_id = t.id AND e.to_status = 'completed' ORDER BY e.id DESC"
                          " LIMIT 1), '') FROM micro_tasks t WHERE t.status = 'completed'"
                          " AND NOT EXISTS (SELECT 1 FROM semantic_memory m WHERE m.task_id = t.id"
                          "   AND m.source = 'engine' AND m.content_type IN ('output','learning'))"
                          " AND t.completed_at >= ? ORDER BY t.completed_at LIMIT ?"));
    s.Bind(1, FormatTimestamp(NowMillis() - kBackfillWindowMs)).Bind(2, limit);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      missing.emplace_back(s.Text(0), s.Text(1));
    }
    return Status::Ok();
  }));
  int64_t n = 0;
  for (const auto& [id, note] : missing) {
    auto t = tasks_.GetTask(id);
    if (!t.ok()) {
      if (t.status().code() == StatusCode::kNotFound) continue;  // deleted meanwhile
      return t.status();
    }
    if (t->status != "completed") continue;
    DS_RETURN_IF_ERROR(RecordCompletion(*t, note).status());
    ++n;
  }
  return n;
}

Result<std::vector<memory::SearchHit>> TaskWorkflow::RelevantMemories(const tasks::Task& t,
                                                                      int limit) {
  DS_ASSIGN_OR_RETURN(tasks::Plan plan, tasks_.GetPlan(t.plan_id));
  memory::SearchQuery q;
  q.query = t.title;
  if (!t.description.empty()) q.query += "\n" + t.description;
  for (const auto& f : t.input_files) q.query += "\n" + f;
  for (const auto& f : t.output_files) q.query += "\n" + f;
  q.query = std::string(Utf8Prefix(q.query, 4000));
  q.filter.project = plan.project_id;
  q.filter.limit = limit + 1;
  q.record_access = false;
  DS_ASSIGN_OR_RETURN(memory::SearchResult r, memory_.Search(q));
  std::vector<memory::SearchHit> hits;
  for (auto& h : r.hits) {
    bool own = h.memory.task_id == t.id && h.memory.source == "engine";
    if (!own && static_cast<int>(hits.size()) < limit) hits.push_back(std::move(h));
  }
  return hits;
}

}  // namespace ds::engine
