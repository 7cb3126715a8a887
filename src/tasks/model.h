// The task model of DESIGN.md §4: projects own intervention plans, plans own
// phases, phases own micro-tasks. These are plain values mirroring the rows;
// validation lives in codec.h (input) and TaskService (cross-row rules).
// Timestamps are RFC 3339 UTC strings (core/clock.h); JSON list columns are
// decoded into vectors. Not synchronised (values).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/projects.h"

namespace ds::tasks {

inline constexpr int kMaxTaskMinutes = 10;
inline constexpr int kMaxContextTokens = 256000;

using Project = ::ds::Project;  // defined with its resolution rules in store/projects.h

struct Plan {
  std::string id;
  std::string project_id;
  std::string title;
  std::string description;
  std::vector<std::string> objectives;
  std::string expected_outcome;
  std::string status = "draft";  // draft|active|completed|archived|cancelled
  int priority = 5;
  std::optional<double> estimated_hours;
  std::optional<double> actual_hours;
  std::vector<std::string> tags;
  std::string metadata = "{}";  // a JSON object, stored verbatim
  int64_t version = 1;
  std::string created_at, updated_at;
  std::optional<std::string> completed_at;
};

struct Phase {
  std::string id;
  std::string plan_id;
  std::string name;
  std::string description;
  int64_t sequence_order = 0;
  std::string status = "pending";  // pending|active|completed|blocked|skipped
  std::optional<int64_t> estimated_minutes;
  std::optional<int64_t> actual_minutes;
  std::optional<std::string> blocking_reason;
  std::string completion_criteria;
  int64_t version = 1;
  std::string created_at, updated_at;
  std::optional<std::string> started_at, completed_at;
  std::vector<std::string> depends_on;  // phase ids
};

struct TaskDependency {
  std::string id;                 // the task depended on
  std::string kind = "blocking";  // blocking|soft
};

struct Task {
  std::string id;
  std::string phase_id;
  std::string plan_id;  // denormalised from the phase for convenience
  std::string title;
  std::string description;
  std::string task_type = "coding";
  std::string status = "pending";  // pending|active|completed|failed|skipped|blocked
  int priority = 5;
  int max_duration_minutes = kMaxTaskMinutes;
  int estimated_minutes = kMaxTaskMinutes;
  int64_t max_context_tokens = kMaxContextTokens;
  std::optional<std::string> assigned_agent;
  std::vector<std::string> input_files, output_files, acceptance_criteria;
  std::string notes;
  std::string error_log;
  int retry_count = 0;
  int max_retries = 3;
  std::optional<std::string> lease_owner, lease_expires_at;
  int64_t version = 1;
  std::optional<std::string> started_at, completed_at;
  std::optional<int64_t> actual_duration_minutes;
  std::optional<int64_t> context_tokens_used;
  std::string created_at, updated_at;
  std::vector<TaskDependency> depends_on;
};

struct TaskEvent {
  int64_t id = 0;
  std::string task_id;
  std::optional<std::string> from_status;
  std::string to_status;
  std::string actor;
  std::string note;
  std::string at;
};

// Enumerations, in the order shown in errors and docs.
const std::vector<std::string_view>& PlanStatuses();
const std::vector<std::string_view>& PhaseStatuses();
const std::vector<std::string_view>& TaskStatuses();
const std::vector<std::string_view>& TaskTypes();
const std::vector<std::string_view>& DependencyKinds();

}  // namespace ds::tasks
