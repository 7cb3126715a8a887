// Projects: every plan, memory and session belongs to one. These helpers
// resolve which project a call acts in and are shared by every service so the
// rule is written once: by id (prj_…, must exist) or by name; a write to an
// unknown name creates the project, a read of one is NotFound, except
// "default", which reads as empty until something is written to it.
// Functions run inside the caller's transaction; not synchronised themselves.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/database.h"

namespace ds {

inline constexpr char kDefaultProject[] = "default";

struct Project {
  std::string id;
  std::string name;
  std::optional<std::string> root_path;
  std::string created_at;
};

Result<std::optional<Project>> FindProject(Connection& c, const std::string& name_or_id);
// Names are 1..100 characters without control characters and not id-shaped.
Result<Project> InsertProject(Connection& c, const std::string& name,
                              const std::optional<std::string>& root);
Result<Project> ProjectForWrite(Connection& c, const std::optional<std::string>& name_or_id);
// nullopt: the default project, not created yet (reads as empty).
Result<std::optional<std::string>> ProjectIdForRead(Connection& c,
                                                    const std::optional<std::string>& name_or_id);
Result<std::vector<Project>> ListProjects(Connection& c);

// The id of the project that owns a resource: a project (prj_), plan (pln_),
// phase (phs_), task (tsk_) or session (ses_) id. NotFound when there is no
// such resource; InvalidArgument when `id` has none of those shapes.
Result<std::string> OwningProject(Connection& c, std::string_view id);
// The same for a memory, by its number.
Result<std::string> OwningProjectOfMemory(Connection& c, int64_t memory_id);

}  // namespace ds
