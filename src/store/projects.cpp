#include "store/projects.h"

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"

namespace ds {
namespace {
constexpr char kProjectCols[] = "id, name, root_path, created_at";
Project ReadProject(const Stmt& s) {
  return {s.Text(0), s.Text(1), s.OptText(2), s.Text(3)};
}

Status ValidateProjectName(const std::string& name);
}  // namespace

Result<std::optional<Project>> FindProject(Connection& c, const std::string& name_or_id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kProjectCols +
                                        " FROM projects WHERE id = ?1 OR name = ?1"));
  s.Bind(1, name_or_id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Project>();
  return std::optional<Project>(ReadProject(s));
}

namespace {
Status ValidateProjectName(const std::string& name) {
  if (!IsValidUtf8(name)) {
    return Status::InvalidArgument("project name must be valid UTF-8")
        .WithDetail("field", "project");
  }
  size_t cps = 0;
  for (unsigned char ch : name) {
    if (ch < 0x20 || ch == 0x7f) {
      return Status::InvalidArgument("project name must not contain control characters")
          .WithDetail("field", "project");
    }
    cps += (ch & 0xC0) != 0x80;
  }
  if (cps < 1 || cps > 100) {
    return Status::InvalidArgument("project name must be 1..100 characters")
        .WithDetail("field", "project");
  }
  return Status::Ok();
}
}  // namespace

Result<Project> InsertProject(Connection& c, const std::string& name,
                              const std::optional<std::string>& root) {
  DS_RETURN_IF_ERROR(ValidateProjectName(name));
  if (IsValidId(name, "prj")) {
    return Status::InvalidArgument("project name must not look like a project id")
        .WithDetail("field", "name");
  }
  Project p{NewId("prj"), name, root, NowTimestamp()};
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO projects(id, name, root_path, created_at) "
                                        "VALUES(?,?,?,?)"));
  s.Bind(1, p.id).Bind(2, p.name).Bind(3, p.root_path).Bind(4, p.created_at);
  Status st = s.Run();
  if (st.code() == StatusCode::kConflict) {
    return Status::Conflict("a project named \"" + name + "\" or with root " + root.value_or("") +
                            " already exists");
  }
  DS_RETURN_IF_ERROR(st);
  return p;
}

// The project a write acts in: by id (must exist) or by name (created on first use).
Result<Project> ProjectForWrite(Connection& c, const std::optional<std::string>& name_or_id) {
  std::string key = name_or_id.value_or(kDefaultProject);
  DS_ASSIGN_OR_RETURN(auto found, FindProject(c, key));
  if (found) return *found;
  if (IsValidId(key, "prj")) return Status::NotFound("project " + key + " does not exist");
  return InsertProject(c, key, std::nullopt);
}

// The project a read acts in; nullopt means "the default project, not created yet".
Result<std::optional<std::string>> ProjectIdForRead(Connection& c,
                                                    const std::optional<std::string>& name_or_id) {
  std::string key = name_or_id.value_or(kDefaultProject);
  DS_ASSIGN_OR_RETURN(auto found, FindProject(c, key));
  if (found) return std::optional<std::string>(found->id);
  if (key == kDefaultProject) return std::optional<std::string>();
  return Status::NotFound("project \"" + key + "\" does not exist");
}

Result<std::vector<Project>> ListProjects(Connection& c) {
  std::vector<Project> out;
  DS_ASSIGN_OR_RETURN(
      Stmt s, c.Prepare(std::string("SELECT ") + kProjectCols + " FROM projects ORDER BY name"));
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadProject(s));
  }
  return out;
}

Result<std::string> OwningProject(Connection& c, std::string_view id) {
  struct Kind {
    const char* prefix;
    const char* noun;
    const char* sql;
  };
  static const Kind kKinds[] = {
      {"prj", "project", "SELECT id FROM projects WHERE id = ?1"},
      {"pln", "plan", "SELECT project_id FROM intervention_plans WHERE id = ?1"},
      {"phs", "phase",
       "SELECT p.project_id FROM phases ph JOIN intervention_plans p ON p.id = ph.plan_id "
       "WHERE ph.id = ?1"},
      {"tsk", "task",
       "SELECT p.project_id FROM micro_tasks t JOIN phases ph ON ph.id = t.phase_id "
       "JOIN intervention_plans p ON p.id = ph.plan_id WHERE t.id = ?1"},
      {"ses", "session", "SELECT project_id FROM work_sessions WHERE id = ?1"},
  };
  for (const Kind& k : kKinds) {
    if (!IsValidId(id, k.prefix)) continue;
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(k.sql));
    s.Bind(1, id);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::NotFound(std::string(k.noun) + " " + std::string(id) + " not found");
    return s.Text(0);
  }
  return Status::InvalidArgument("\"" + std::string(id) + "\" is not a resource id");
}

Result<std::string> OwningProjectOfMemory(Connection& c, int64_t memory_id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT project_id FROM semantic_memory WHERE id = ?1"));
  s.Bind(1, memory_id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("memory " + std::to_string(memory_id) + " not found");
  return s.Text(0);
}

}  // namespace ds
