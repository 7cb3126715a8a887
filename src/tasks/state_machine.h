// The micro-task status state machine of DESIGN.md §6:
//   pending -> active | skipped        active -> completed | failed | blocked | pending
//   failed  -> pending (retry)         blocked -> pending | skipped
// completed and skipped are terminal. Plans move by hand between
//   draft -> active | cancelled | archived; active -> archived | cancelled;
//   completed | cancelled -> archived
// and complete themselves (roll-up), never by hand. Pure functions; thread-safe.
#pragma once

#include <string_view>
#include <vector>

namespace ds::tasks {

std::vector<std::string_view> AllowedTaskTransitions(std::string_view from);
bool IsTaskTransitionAllowed(std::string_view from, std::string_view to);
// Statuses a dependency may have for its dependents to start.
bool IsTaskDone(std::string_view status);  // completed | skipped

std::vector<std::string_view> AllowedPlanTransitions(std::string_view from);
bool IsPlanTransitionAllowed(std::string_view from, std::string_view to);
// Plans whose tasks may still be started (draft or active).
bool IsPlanOpen(std::string_view status);

}  // namespace ds::tasks
