#include "tasks/state_machine.h"

#include <algorithm>

#include "tasks/model.h"

namespace ds::tasks {

const std::vector<std::string_view>& PlanStatuses() {
  static const std::vector<std::string_view> v{"draft", "active", "completed", "archived",
                                               "cancelled"};
  return v;
}
const std::vector<std::string_view>& PhaseStatuses() {
  static const std::vector<std::string_view> v{"pending", "active", "completed", "blocked",
                                               "skipped"};
  return v;
}
const std::vector<std::string_view>& TaskStatuses() {
  static const std::vector<std::string_view> v{"pending", "active",  "completed",
                                               "failed",  "skipped", "blocked"};
  return v;
}
const std::vector<std::string_view>& TaskTypes() {
  static const std::vector<std::string_view> v{"analysis", "coding", "documentation",
                                               "testing",  "review", "research"};
  return v;
}
const std::vector<std::string_view>& DependencyKinds() {
  static const std::vector<std::string_view> v{"blocking", "soft"};
  return v;
}

std::vector<std::string_view> AllowedTaskTransitions(std::string_view from) {
  if (from == "pending") return {"active", "skipped"};
  if (from == "active") return {"completed", "failed", "blocked", "pending"};
  if (from == "failed") return {"pending"};
  if (from == "blocked") return {"pending", "skipped"};
  return {};
}

bool IsTaskTransitionAllowed(std::string_view from, std::string_view to) {
  auto allowed = AllowedTaskTransitions(from);
  return std::find(allowed.begin(), allowed.end(), to) != allowed.end();
}

bool IsTaskDone(std::string_view status) {
  return status == "completed" || status == "skipped";
}

std::vector<std::string_view> AllowedPlanTransitions(std::string_view from) {
  if (from == "draft") return {"active", "cancelled", "archived"};
  if (from == "active") return {"archived", "cancelled"};
  if (from == "completed" || from == "cancelled") return {"archived"};
  return {};
}

bool IsPlanTransitionAllowed(std::string_view from, std::string_view to) {
  auto allowed = AllowedPlanTransitions(from);
  return std::find(allowed.begin(), allowed.end(), to) != allowed.end();
}

bool IsPlanOpen(std::string_view status) {
  return status == "draft" || status == "active";
}

}  // namespace ds::tasks
