// JSON <-> task model. Decoders validate types, ranges and enumerations and
// reject unknown fields (InvalidArgument naming the field); they are shared by
// every adapter (REST, MCP, CLI) so a rule is written once. Encoders produce
// the API's representation. Stateless; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "tasks/model.h"

namespace ds::tasks {

struct PlanInput {
  std::optional<std::string> project;  // name or id; default project when absent
  std::string title;
  std::string description;
  std::vector<std::string> objectives;
  std::string expected_outcome;
  std::string status = "draft";  // draft | active
  int priority = 5;
  std::optional<double> estimated_hours;
  std::vector<std::string> tags;
  std::string metadata = "{}";
};

struct PlanPatch {
  std::optional<std::string> title, description, expected_outcome, status;
  std::optional<std::vector<std::string>> objectives, tags;
  std::optional<int> priority;
  std::optional<double> estimated_hours, actual_hours;
  bool clear_estimated_hours = false;
  std::optional<std::string> metadata;
  std::optional<int64_t> expected_version;
};

struct PhaseInput {
  std::string name;
  std::string description;
  std::optional<int64_t> sequence_order;  // default: after the plan's last phase
  std::optional<int64_t> estimated_minutes;
  std::string completion_criteria;
  std::vector<std::string> depends_on;
};

struct PhasePatch {
  std::optional<std::string> name, description, completion_criteria;
  std::optional<int64_t> sequence_order, estimated_minutes;
  std::optional<std::vector<std::string>> depends_on;  // replaces the set
  std::optional<int64_t> expected_version;
};

struct TaskInput {
  std::optional<std::string> phase_id;  // from the body when not given by the route
  std::string title;
  std::string description;
  std::string task_type = "coding";
  int priority = 5;
  int max_duration_minutes = kMaxTaskMinutes;
  std::optional<int> estimated_minutes;  // defaults to max_duration_minutes
  int64_t max_context_tokens = kMaxContextTokens;
  std::optional<std::string> assigned_agent;
  std::vector<std::string> input_files, output_files, acceptance_criteria;
  std::string notes;
  int max_retries = 3;
  std::vector<TaskDependency> depends_on;
};

struct TaskPatch {
  std::optional<std::string> title, description, task_type, notes;
  std::optional<int> priority, max_duration_minutes, estimated_minutes, max_retries;
  std::optional<int64_t> max_context_tokens;
  std::optional<std::string> assigned_agent;
  bool clear_assigned_agent = false;
  std::optional<std::vector<std::string>> input_files, output_files, acceptance_criteria;
  std::optional<int64_t> expected_version;
};

struct TransitionInput {
  std::string to;
  std::string note;
  std::optional<int64_t> context_tokens_used;
  std::optional<int64_t> expected_version;
  std::optional<std::string> actor;  // who acts; also becomes assigned_agent on start
  std::string channel = "api";       // audit actor when no actor is named (api, cli, mcp)
  bool force = false;                // an admin acting on a task leased by someone else
};

// POST /tasks/claim: the best ready task becomes active, leased to `agent`.
struct ClaimInput {
  std::string agent;
  int lease_seconds = 300;
  std::optional<std::string> project;
  std::optional<std::string> plan_id;
};

// POST /tasks/{id}/heartbeat: extends the caller's lease.
struct HeartbeatInput {
  std::string agent;
  int lease_seconds = 300;
  bool force = false;
};

inline constexpr int kMinLeaseSeconds = 1;
inline constexpr int kMaxLeaseSeconds = 86400;

struct DependencyInput {
  TaskDependency dependency;
};

Result<PlanInput> DecodePlanInput(const json::value& body);
Result<PlanPatch> DecodePlanPatch(const json::value& body);
Result<PhaseInput> DecodePhaseInput(const json::value& body);
Result<PhasePatch> DecodePhasePatch(const json::value& body);
Result<TaskInput> DecodeTaskInput(const json::value& body);
Result<TaskPatch> DecodeTaskPatch(const json::value& body);
Result<TransitionInput> DecodeTransition(const json::value& body);
// {"depends_on": "tsk_…"} or {"depends_on": {"id": …, "kind": …}} or {"depends_on": …, "kind": …}
// `agent` comes from the body, else from `header_agent` (X-DevStream-Agent);
// one of them is required.
Result<ClaimInput> DecodeClaim(const json::value& body,
                               const std::optional<std::string>& header_agent);
Result<HeartbeatInput> DecodeHeartbeat(const json::value& body,
                                       const std::optional<std::string>& header_agent);
Result<TaskDependency> DecodeDependency(const json::value& body);

json::object ToJson(const Project& p);
json::object ToJson(const Plan& p);
json::object ToJson(const Phase& p);
json::object ToJson(const Task& t);
json::object ToJson(const TaskEvent& e);

// A task as JSON text written straight into `w`: the same bytes as
// ToJsonString(ToJson(t)), without the json::object (GET by id and task lists
// are the hottest responses). WriteJsonMembers writes the members only, so a
// caller can add its own before closing the object.
void WriteJson(const Task& t, JsonWriter& w);
void WriteJsonMembers(const Task& t, JsonWriter& w);

}  // namespace ds::tasks
