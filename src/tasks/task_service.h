// TaskService holds every rule of the task system: projects, plans, phases,
// micro-tasks, dependencies (cycle-free, same plan), the status state machine
// with its audit trail, roll-ups (phase and plan status follow their tasks),
// the ready queue and the plan graph. REST, MCP, hooks and the CLI are thin
// adapters over it.
//
// Invariants kept by every write (each runs in one BEGIN IMMEDIATE transaction):
//  - the dependency graph of a plan (task edges + phase edges) is acyclic;
//  - a task starts only when its blocking dependencies and its phase's
//    dependency phases are done (completed or skipped);
//  - each status change bumps `version` and appends a task_events row;
//  - phase and plan statuses are recomputed in the same transaction.
// Thread-safe: methods may be called concurrently (Database serialises writes).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "store/database.h"
#include "tasks/codec.h"
#include "tasks/model.h"

namespace ds::tasks {

template <typename T>
struct Page {
  std::vector<T> items;
  std::optional<std::string> next_cursor;
};

struct PlanFilter {
  std::optional<std::string> project;  // name or id; "default" when absent
  std::optional<std::string> status;
  int limit = 50;
  std::optional<std::string> cursor;
};

struct TaskFilter {
  std::optional<std::string> project;  // implied by plan_id/phase_id when those are set
  std::optional<std::string> status, plan_id, phase_id, task_type, assigned_agent;
  std::optional<int> priority_min;
  int limit = 50;
  std::optional<std::string> cursor;
};

struct ReadyFilter {
  std::optional<std::string> project;
  std::optional<std::string> plan_id;
  int limit = 20;
};

// What one lease-reaper pass did.
struct ReapResult {
  std::vector<std::string> requeued;  // back to pending, retry_count + 1
  std::vector<std::string> failed;    // out of retries
};

struct Progress {
  int total = 0, pending = 0, active = 0, completed = 0, failed = 0, skipped = 0, blocked = 0;
  double percent = 0;  // (completed + skipped) / total
  int64_t context_tokens_used = 0;
  int64_t actual_minutes = 0;
};

struct PlanGraph {
  std::string plan_id;
  std::vector<Task> tasks;
  std::vector<Phase> phases;
  std::vector<std::string> order;
  std::vector<std::vector<std::string>> levels;
  std::vector<std::string> critical_path;
  int64_t critical_path_minutes = 0;
  Progress progress;
};

class TaskService {
 public:
  explicit TaskService(Database& db);

  // Projects. Names are 1..100 printable characters.
  Result<Project> CreateProject(const std::string& name, const std::optional<std::string>& root);
  Result<std::vector<Project>> ListProjects();
  // By id (prj_…) or name; NotFound when absent.
  Result<Project> GetProject(const std::string& name_or_id);

  // Plans. CreatePlan puts the plan in input.project (created on first use).
  Result<Plan> CreatePlan(const PlanInput& input);
  Result<Plan> GetPlan(const std::string& id);
  Result<Page<Plan>> ListPlans(const PlanFilter& filter);
  Result<Plan> UpdatePlan(const std::string& id, const PlanPatch& patch);
  Status DeletePlan(const std::string& id, std::optional<int64_t> expected_version);
  Result<Progress> PlanProgress(const std::string& plan_id);

  // Phases.
  Result<Phase> CreatePhase(const std::string& plan_id, const PhaseInput& input);
  Result<Phase> GetPhase(const std::string& id);
  Result<std::vector<Phase>> ListPhases(const std::string& plan_id);
  Result<Phase> UpdatePhase(const std::string& id, const PhasePatch& patch);
  Status DeletePhase(const std::string& id, std::optional<int64_t> expected_version);

  // Micro-tasks. `actor` names who acts in the audit trail.
  Result<Task> CreateTask(const std::string& phase_id, const TaskInput& input);
  Result<Task> GetTask(const std::string& id);
  Result<Page<Task>> ListTasks(const TaskFilter& filter);
  Result<Task> UpdateTask(const std::string& id, const TaskPatch& patch);
  Status DeleteTask(const std::string& id, std::optional<int64_t> expected_version);
  // Conflict (409) for an illegal move, with details.allowed listing the legal
  // targets, or for unmet dependencies (details.unmet). Forbidden (403) when
  // the task is leased to someone other than input.actor and input.force is
  // not set. Leaving `active` releases the lease.
  Result<Task> Transition(const std::string& id, const TransitionInput& input);
  Result<Task> AddDependency(const std::string& task_id, const TaskDependency& dep);
  Result<Task> RemoveDependency(const std::string& task_id, const std::string& depends_on);
  Result<std::vector<TaskEvent>> Events(const std::string& task_id);

  // Pending tasks whose blocking and phase dependencies are done, in open
  // (draft/active) plans: priority first, then age, soft edges respected.
  Result<std::vector<Task>> Ready(const ReadyFilter& filter);
  Result<PlanGraph> Graph(const std::string& plan_id);

  // Leases. Claim atomically takes the first task of the ready list (after
  // returning expired leases to pending), makes it active and leases it to
  // input.agent until now + lease_seconds; nullopt when nothing is ready.
  // Each claim is one BEGIN IMMEDIATE transaction, so claimers in any number
  // of threads and processes never receive the same task.
  Result<std::optional<Task>> Claim(const ClaimInput& input);
  // Extends the lease to now + lease_seconds. Conflict when the task is not
  // active; Forbidden when it is leased to another agent (unless force; a
  // forced extension is recorded in the audit trail).
  Result<Task> Heartbeat(const std::string& id, const HeartbeatInput& input);
  // Active tasks whose lease expired go back to pending with retry_count + 1,
  // or to failed once retry_count has reached max_retries; both are recorded
  // in the audit trail with actor "lease-reaper".
  Result<ReapResult> ReapExpiredLeases();
  // Recomputes every phase and plan status and actual minutes of open plans
  // from their tasks (repairs roll-ups after manual SQL or an interrupted
  // import). Returns how many phases were looked at.
  Result<int64_t> RecomputeRollups();

 private:
  Database& db_;
};

json::object ToJson(const Progress& p);
json::object ToJson(const PlanGraph& g);

}  // namespace ds::tasks
