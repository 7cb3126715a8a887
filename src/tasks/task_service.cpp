#include "tasks/task_service.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"
#include "core/signing.h"
#include "tasks/dependency_graph.h"
#include "tasks/state_machine.h"

namespace ds::tasks {
namespace {

constexpr int kMaxPageSize = 500;

// ---- small helpers ----

std::string PageCursor(const std::string& last_id) {
  return EncodeCursor("after:" + last_id);
}

Result<std::string> PagePosition(const std::optional<std::string>& cursor) {
  auto raw = DecodeCursor(cursor);
  if (raw && raw->empty()) return std::string();
  if (!raw || raw->rfind("after:", 0) != 0 || raw->size() > 100) {
    return Status::InvalidArgument("cursor is not a cursor this server issued")
        .WithDetail("field", "cursor");
  }
  return raw->substr(6);
}

int ClampLimit(int limit) {
  return std::clamp(limit, 1, kMaxPageSize);
}

Status CheckVersion(std::string_view what, const std::string& id, int64_t current,
                    std::optional<int64_t> expected) {
  if (expected && *expected != current) {
    return Status::PreconditionFailed(std::string(what) + " " + id + " is at version " +
                                      std::to_string(current) + ", not " +
                                      std::to_string(*expected) + "; re-read it and retry")
        .WithDetail("current_version", current);
  }
  return Status::Ok();
}

json::array ToJsonArray(const std::vector<std::string_view>& v) {
  json::array a;
  for (auto s : v) a.emplace_back(s);
  return a;
}

// ---- row mappers ----

constexpr char kPlanCols[] =
    "id, project_id, title, description, objectives, expected_outcome, status, priority, "
    "estimated_hours, actual_hours, tags, metadata, version, created_at, updated_at, completed_at";
Plan ReadPlan(const Stmt& s) {
  Plan p;
  p.id = s.Text(0);
  p.project_id = s.Text(1);
  p.title = s.Text(2);
  p.description = s.Text(3);
  p.objectives = DecodeStringList(s.Text(4));
  p.expected_outcome = s.Text(5);
  p.status = s.Text(6);
  p.priority = static_cast<int>(s.Int(7));
  p.estimated_hours = s.OptDouble(8);
  p.actual_hours = s.OptDouble(9);
  p.tags = DecodeStringList(s.Text(10));
  p.metadata = s.Text(11);
  p.version = s.Int(12);
  p.created_at = s.Text(13);
  p.updated_at = s.Text(14);
  p.completed_at = s.OptText(15);
  return p;
}

constexpr char kPhaseCols[] =
    "id, plan_id, name, description, sequence_order, status, estimated_minutes, actual_minutes, "
    "blocking_reason, completion_criteria, version, created_at, updated_at, started_at, "
    "completed_at";
Phase ReadPhase(const Stmt& s) {
  Phase p;
  p.id = s.Text(0);
  p.plan_id = s.Text(1);
  p.name = s.Text(2);
  p.description = s.Text(3);
  p.sequence_order = s.Int(4);
  p.status = s.Text(5);
  p.estimated_minutes = s.OptInt(6);
  p.actual_minutes = s.OptInt(7);
  p.blocking_reason = s.OptText(8);
  p.completion_criteria = s.Text(9);
  p.version = s.Int(10);
  p.created_at = s.Text(11);
  p.updated_at = s.Text(12);
  p.started_at = s.OptText(13);
  p.completed_at = s.OptText(14);
  return p;
}

constexpr char kTaskCols[] =
    "t.id, t.phase_id, ph.plan_id, t.title, t.description, t.task_type, t.status, t.priority, "
    "t.max_duration_minutes, t.estimated_minutes, t.max_context_tokens, t.assigned_agent, "
    "t.input_files, t.output_files, t.acceptance_criteria, t.notes, t.error_log, t.retry_count, "
    "t.max_retries, t.lease_owner, t.lease_expires_at, t.version, t.started_at, t.completed_at, "
    "t.actual_duration_minutes, t.context_tokens_used, t.created_at, t.updated_at";
constexpr char kTaskFrom[] =
    " FROM micro_tasks t JOIN phases ph ON ph.id = t.phase_id"
    " JOIN intervention_plans pl ON pl.id = ph.plan_id";
Task ReadTask(const Stmt& s) {
  Task t;
  t.id = s.Text(0);
  t.phase_id = s.Text(1);
  t.plan_id = s.Text(2);
  t.title = s.Text(3);
  t.description = s.Text(4);
  t.task_type = s.Text(5);
  t.status = s.Text(6);
  t.priority = static_cast<int>(s.Int(7));
  t.max_duration_minutes = static_cast<int>(s.Int(8));
  t.estimated_minutes = static_cast<int>(s.Int(9));
  t.max_context_tokens = s.Int(10);
  t.assigned_agent = s.OptText(11);
  t.input_files = DecodeStringList(s.Text(12));
  t.output_files = DecodeStringList(s.Text(13));
  t.acceptance_criteria = DecodeStringList(s.Text(14));
  t.notes = s.Text(15);
  t.error_log = s.Text(16);
  t.retry_count = static_cast<int>(s.Int(17));
  t.max_retries = static_cast<int>(s.Int(18));
  t.lease_owner = s.OptText(19);
  t.lease_expires_at = s.OptText(20);
  t.version = s.Int(21);
  t.started_at = s.OptText(22);
  t.completed_at = s.OptText(23);
  t.actual_duration_minutes = s.OptInt(24);
  t.context_tokens_used = s.OptInt(25);
  t.created_at = s.Text(26);
  t.updated_at = s.Text(27);
  return t;
}

// ---- loaders (run inside a transaction) ----

Result<Plan> LoadPlan(Connection& c, const std::string& id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kPlanCols +
                                        " FROM intervention_plans WHERE id = ?"));
  s.Bind(1, id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("plan " + id + " does not exist");
  return ReadPlan(s);
}

Result<std::vector<std::string>> LoadPhaseDeps(Connection& c, const std::string& phase_id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT depends_on FROM phase_dependencies "
                                        "WHERE phase_id = ? ORDER BY depends_on"));
  s.Bind(1, phase_id);
  std::vector<std::string> out;
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(s.Text(0));
  }
  return out;
}

Result<Phase> LoadPhase(Connection& c, const std::string& id) {
  DS_ASSIGN_OR_RETURN(Stmt s,
                      c.Prepare(std::string("SELECT ") + kPhaseCols + " FROM phases WHERE id = ?"));
  s.Bind(1, id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("phase " + id + " does not exist");
  Phase p = ReadPhase(s);
  DS_ASSIGN_OR_RETURN(p.depends_on, LoadPhaseDeps(c, id));
  return p;
}

Result<std::vector<Phase>> LoadPhases(Connection& c, const std::string& plan_id) {
  std::vector<Phase> out;
  {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kPhaseCols +
                                          " FROM phases WHERE plan_id = ? "
                                          "ORDER BY sequence_order, id"));
    s.Bind(1, plan_id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadPhase(s));
    }
  }
  for (auto& p : out) {
    DS_ASSIGN_OR_RETURN(p.depends_on, LoadPhaseDeps(c, p.id));
  }
  return out;
}

Status LoadTaskDeps(Connection& c, Task* t) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT depends_on, kind FROM task_dependencies "
                                        "WHERE task_id = ? ORDER BY depends_on"));
  s.Bind(1, t->id);
  t->depends_on.clear();
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    t->depends_on.push_back({s.Text(0), s.Text(1)});
  }
  return Status::Ok();
}

Result<Task> LoadTask(Connection& c, const std::string& id) {
  static const std::string kSql =
      std::string("SELECT ") + kTaskCols + kTaskFrom + " WHERE t.id = ?";
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(kSql));
  s.Bind(1, id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("task " + id + " does not exist");
  Task t = ReadTask(s);
  DS_RETURN_IF_ERROR(LoadTaskDeps(c, &t));
  return t;
}

Result<std::vector<Task>> LoadPlanTasks(Connection& c, const std::string& plan_id) {
  std::vector<Task> out;
  {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kTaskCols + kTaskFrom +
                                          " WHERE ph.plan_id = ? ORDER BY t.id"));
    s.Bind(1, plan_id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadTask(s));
    }
  }
  for (auto& t : out) DS_RETURN_IF_ERROR(LoadTaskDeps(c, &t));
  return out;
}

// ---- the plan's dependency graph ----

// Tasks are nodes; each phase has virtual "start" and "done" nodes so phase
// dependencies (done(Q) -> start(P)) constrain the tasks inside them.
struct PlanGraphModel {
  DependencyGraph graph;
  std::vector<Task> tasks;
  std::vector<Phase> phases;
};

std::string PhaseStart(const std::string& id) {
  return "start:" + id;
}
std::string PhaseDone(const std::string& id) {
  return "done:" + id;
}

Result<PlanGraphModel> BuildPlanGraph(Connection& c, const std::string& plan_id) {
  PlanGraphModel m;
  DS_ASSIGN_OR_RETURN(m.phases, LoadPhases(c, plan_id));
  DS_ASSIGN_OR_RETURN(m.tasks, LoadPlanTasks(c, plan_id));
  using K = DependencyGraph::EdgeKind;
  for (const auto& p : m.phases) {
    int s = m.graph.AddNode(PhaseStart(p.id), 0, 0, true);
    int d = m.graph.AddNode(PhaseDone(p.id), 0, 0, true);
    m.graph.AddEdge(s, d, K::kBlocking);
  }
  for (const auto& t : m.tasks) {
    int n = m.graph.AddNode(t.id, t.estimated_minutes, t.priority);
    m.graph.AddEdge(*m.graph.Find(PhaseStart(t.phase_id)), n, K::kBlocking);
    m.graph.AddEdge(n, *m.graph.Find(PhaseDone(t.phase_id)), K::kBlocking);
  }
  for (const auto& t : m.tasks) {
    for (const auto& d : t.depends_on) {
      auto from = m.graph.Find(d.id);
      if (!from) continue;
      m.graph.AddEdge(*from, *m.graph.Find(t.id), d.kind == "soft" ? K::kSoft : K::kBlocking);
    }
  }
  for (const auto& p : m.phases) {
    for (const auto& q : p.depends_on) {
      auto from = m.graph.Find(PhaseDone(q));
      if (!from) continue;
      m.graph.AddEdge(*from, *m.graph.Find(PhaseStart(p.id)), K::kBlocking);
    }
  }
  return m;
}

json::array CycleToJson(const std::vector<std::string>& path) {
  json::array a;
  for (const auto& k : path) a.emplace_back(k);
  return a;
}

std::string CycleToText(const std::vector<std::string>& path) {
  std::string s;
  for (const auto& k : path) s += (s.empty() ? "" : " -> ") + k;
  return s;
}

// ---- roll-ups ----

Status RollUpPhase(Connection& c, const std::string& phase_id) {
  DS_ASSIGN_OR_RETURN(
      Stmt s,
      c.Prepare("SELECT status, count(*), coalesce(sum(actual_duration_minutes), 0), min(id) "
                "FROM micro_tasks WHERE phase_id = ? GROUP BY status"));
  s.Bind(1, phase_id);
  std::map<std::string, int64_t> counts;
  std::map<std::string, std::string> example;
  int64_t total = 0, minutes = 0;
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    counts[s.Text(0)] = s.Int(1);
    example[s.Text(0)] = s.Text(3);
    total += s.Int(1);
    minutes += s.Int(2);
  }
  int64_t done = counts["completed"] + counts["skipped"];
  std::string status;
  std::optional<std::string> reason;
  if (total == 0) {
    status = "pending";
  } else if (counts["active"] > 0) {
    status = "active";
  } else if (counts["failed"] > 0 || counts["blocked"] > 0) {
    status = "blocked";
    const std::string& which = counts["failed"] > 0 ? "failed" : "blocked";
    reason = "task " + example[which] + " is " + which;
  } else if (counts["skipped"] == total) {
    status = "skipped";
  } else if (done == total) {
    status = "completed";
  } else if (done > 0) {
    status = "active";
  } else {
    status = "pending";
  }
  DS_ASSIGN_OR_RETURN(
      Stmt u,
      c.Prepare(
          "UPDATE phases SET status = ?2, blocking_reason = ?3, actual_minutes = ?4,"
          " started_at = CASE WHEN ?2 IN ('active','completed','blocked') AND started_at IS NULL"
          "   THEN ?5 ELSE started_at END,"
          " completed_at = CASE WHEN ?2 IN ('completed','skipped') THEN coalesce(completed_at, ?5)"
          "   ELSE NULL END,"
          " version = version + 1, updated_at = ?5"
          " WHERE id = ?1 AND (status IS NOT ?2 OR blocking_reason IS NOT ?3"
          "   OR actual_minutes IS NOT ?4)"));
  u.Bind(1, phase_id).Bind(2, status).Bind(3, reason).Bind(5, NowTimestamp());
  if (total > 0)
    u.Bind(4, minutes);
  else
    u.BindNull(4);
  return u.Run();
}

Status RollUpPlan(Connection& c, const std::string& plan_id) {
  // Phases without tasks have nothing to complete: they neither hold a plan
  // open nor complete it.
  DS_ASSIGN_OR_RETURN(
      Stmt s,
      c.Prepare(
          "SELECT count(*), coalesce(sum(status IN ('completed','skipped')), 0) FROM phases p "
          "WHERE p.plan_id = ? AND EXISTS (SELECT 1 FROM micro_tasks t WHERE t.phase_id = p.id)"));
  s.Bind(1, plan_id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  (void)row;
  int64_t phases = s.Int(0), done = s.Int(1);
  bool all_done = phases > 0 && done == phases;
  DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE intervention_plans SET"
                                        " status = CASE WHEN ?2 THEN 'completed' ELSE 'active' END,"
                                        " completed_at = CASE WHEN ?2 THEN ?3 ELSE NULL END,"
                                        " version = version + 1, updated_at = ?3"
                                        " WHERE id = ?1 AND ((?2 AND status IN ('draft','active'))"
                                        "   OR (NOT ?2 AND status = 'completed'))"));
  u.Bind(1, plan_id).Bind(2, static_cast<int64_t>(all_done)).Bind(3, NowTimestamp());
  return u.Run();
}

Status RollUp(Connection& c, const std::string& phase_id, const std::string& plan_id) {
  DS_RETURN_IF_ERROR(RollUpPhase(c, phase_id));
  return RollUpPlan(c, plan_id);
}

Status InsertEvent(Connection& c, const std::string& task_id,
                   const std::optional<std::string>& from, const std::string& to,
                   const std::string& actor, const std::string& note) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO task_events(task_id, from_status, "
                                        "to_status, actor, note, at) VALUES(?,?,?,?,?,?)"));
  s.Bind(1, task_id).Bind(2, from).Bind(3, to).Bind(4, actor).Bind(5, note).Bind(6, NowTimestamp());
  return s.Run();
}

// Blocking dependencies and dependency phases not yet done, as ids.
Result<std::vector<std::string>> UnmetPrerequisites(Connection& c, const Task& t) {
  std::vector<std::string> unmet;
  DS_ASSIGN_OR_RETURN(
      Stmt s,
      c.Prepare("SELECT x.id FROM task_dependencies d JOIN micro_tasks x ON x.id = d.depends_on"
                " WHERE d.task_id = ? AND d.kind = 'blocking'"
                "   AND x.status NOT IN ('completed','skipped') ORDER BY x.id"));
  s.Bind(1, t.id);
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    unmet.push_back(s.Text(0));
  }
  DS_ASSIGN_OR_RETURN(
      Stmt p, c.Prepare("SELECT DISTINCT pd.depends_on FROM phase_dependencies pd"
                        " JOIN micro_tasks qt ON qt.phase_id = pd.depends_on"
                        " WHERE pd.phase_id = ? AND qt.status NOT IN ('completed','skipped')"
                        " ORDER BY pd.depends_on"));
  p.Bind(1, t.phase_id);
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, p.Step());
    if (!row) break;
    unmet.push_back(p.Text(0));
  }
  return unmet;
}

Status ValidatePhaseDeps(Connection& c, const std::string& plan_id, const std::string* self,
                         const std::vector<std::string>& deps) {
  for (const auto& d : deps) {
    if (self && d == *self) {
      return Status::InvalidArgument("phase cannot depend on itself")
          .WithDetail("field", "depends_on");
    }
    auto found = LoadPhase(c, d);
    if (!found.ok() && found.status().code() == StatusCode::kNotFound) {
      return Status::InvalidArgument("depends_on: phase " + d + " does not exist")
          .WithDetail("field", "depends_on");
    }
    DS_ASSIGN_OR_RETURN(Phase q, std::move(found));
    if (q.plan_id != plan_id) {
      return Status::InvalidArgument("phase " + d + " belongs to another plan")
          .WithDetail("field", "depends_on");
    }
  }
  return Status::Ok();
}

Status InsertPhaseDeps(Connection& c, const std::string& phase_id,
                       const std::vector<std::string>& deps) {
  for (const auto& d : deps) {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT OR IGNORE INTO phase_dependencies(phase_id, "
                                          "depends_on) VALUES(?,?)"));
    s.Bind(1, phase_id).Bind(2, d);
    DS_RETURN_IF_ERROR(s.Run());
  }
  return Status::Ok();
}

Status CheckAcyclic(Connection& c, const std::string& plan_id) {
  DS_ASSIGN_OR_RETURN(PlanGraphModel m, BuildPlanGraph(c, plan_id));
  auto cycle = m.graph.FindCycle();
  if (!cycle.empty()) {
    return Status::Conflict("dependency cycle: " + CycleToText(cycle))
        .WithDetail("cycle", CycleToJson(cycle));
  }
  return Status::Ok();
}

// Adds t -> depends_on edges after validating them (same plan, exist, acyclic).
Status AddTaskDeps(Connection& c, const Task& t, const std::vector<TaskDependency>& deps) {
  for (const auto& d : deps) {
    if (d.id == t.id) {
      return Status::InvalidArgument("task cannot depend on itself")
          .WithDetail("field", "depends_on");
    }
    auto dep = LoadTask(c, d.id);
    if (!dep.ok()) {
      if (dep.status().code() == StatusCode::kNotFound) {
        return Status::InvalidArgument("depends_on: task " + d.id + " does not exist")
            .WithDetail("field", "depends_on");
      }
      return dep.status();
    }
    if (dep->plan_id != t.plan_id) {
      return Status::InvalidArgument("depends_on: task " + d.id +
                                     " belongs to another plan; dependencies stay within a plan")
          .WithDetail("field", "depends_on");
    }
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare("INSERT INTO task_dependencies(task_id, depends_on, kind) VALUES(?,?,?)"
                          " ON CONFLICT(task_id, depends_on) DO UPDATE SET kind = excluded.kind"));
    s.Bind(1, t.id).Bind(2, d.id).Bind(3, d.kind);
    DS_RETURN_IF_ERROR(s.Run());
  }
  if (!deps.empty()) DS_RETURN_IF_ERROR(CheckAcyclic(c, t.plan_id));
  return Status::Ok();
}

Status BumpTask(Connection& c, const std::string& id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("UPDATE micro_tasks SET version = version + 1, "
                                        "updated_at = ? WHERE id = ?"));
  s.Bind(1, NowTimestamp()).Bind(2, id);
  return s.Run();
}

// A leased task is acted on only by its lease owner, or by anyone with force.
Status CheckLeaseOwner(const Task& t, const std::optional<std::string>& actor, bool force) {
  if (t.status != "active" || !t.lease_owner || force || actor == t.lease_owner) {
    return Status::Ok();
  }
  return Status::Forbidden("task " + t.id + " is leased to " + *t.lease_owner + " until " +
                           t.lease_expires_at.value_or("?") + "; only the lease owner (" +
                           "send its agent name) or an admin with force may change it")
      .WithDetail("lease_owner", json::string(*t.lease_owner))
      .WithDetail("lease_expires_at", json::string(t.lease_expires_at.value_or("")));
}

// Ready tasks, best first: pending, in an open plan, blocking dependencies and
// dependency phases done; priority then age (ids sort by creation), soft edges
// among ready tasks put the prerequisite first.
// `first_only`: the caller needs the best task alone (a claim). Unless soft
// edges could reorder the list, the query then stops at one row.
Result<std::vector<Task>> LoadReady(Connection& c, const std::optional<std::string>& project_id,
                                    const std::optional<std::string>& plan_id,
                                    bool first_only = false) {
  std::vector<Task> ready;
  int64_t limit = -1;
  if (first_only) {
    DS_ASSIGN_OR_RETURN(Stmt soft, c.Prepare("SELECT EXISTS (SELECT 1 FROM task_dependencies d"
                                             " JOIN micro_tasks t ON t.id = d.task_id"
                                             " WHERE d.kind = 'soft' AND t.status = 'pending')"));
    DS_ASSIGN_OR_RETURN(bool row, soft.Step());
    if (row && soft.Int(0) == 0) limit = 1;
  }
  DS_ASSIGN_OR_RETURN(
      Stmt s, c.Prepare(std::string("SELECT ") + kTaskCols + kTaskFrom +
                        " WHERE t.status = 'pending' AND pl.status IN ('draft','active')"
                        " AND (?1 IS NULL OR pl.project_id = ?1) AND (?2 IS NULL OR pl.id = ?2)"
                        " AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN micro_tasks x"
                        "   ON x.id = d.depends_on WHERE d.task_id = t.id AND d.kind = 'blocking'"
                        "   AND x.status NOT IN ('completed','skipped'))"
                        " AND NOT EXISTS (SELECT 1 FROM phase_dependencies pd JOIN micro_tasks qt"
                        "   ON qt.phase_id = pd.depends_on WHERE pd.phase_id = t.phase_id"
                        "   AND qt.status NOT IN ('completed','skipped'))"
                        " ORDER BY t.priority DESC, t.id LIMIT ?3"));
  s.Bind(1, project_id).Bind(2, plan_id).Bind(3, limit);
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    ready.push_back(ReadTask(s));
  }
  if (ready.empty()) return ready;
  // Every edge out of a pending task in one pass (not one query per task:
  // a claim runs this inside the write lock).
  {
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < ready.size(); ++i) index.emplace(ready[i].id, i);
    DS_ASSIGN_OR_RETURN(Stmt d, c.Prepare("SELECT d.task_id, d.depends_on, d.kind"
                                          " FROM task_dependencies d JOIN micro_tasks t"
                                          " ON t.id = d.task_id WHERE t.status = 'pending'"
                                          " ORDER BY d.task_id, d.depends_on"));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, d.Step());
      if (!row) break;
      auto it = index.find(d.Text(0));
      if (it != index.end()) ready[it->second].depends_on.push_back({d.Text(1), d.Text(2)});
    }
  }
  // Soft edges among ready tasks only reorder: a prerequisite comes first.
  DependencyGraph g;
  for (const auto& t : ready) g.AddNode(t.id, t.estimated_minutes, t.priority);
  bool any_soft = false;
  for (const auto& t : ready) {
    for (const auto& d : t.depends_on) {
      auto from = g.Find(d.id);
      if (d.kind == "soft" && from) {
        g.AddEdge(*from, *g.Find(t.id), DependencyGraph::EdgeKind::kSoft);
        any_soft = true;
      }
    }
  }
  if (any_soft) {
    std::map<std::string, Task> by_id;
    for (auto& t : ready) by_id.emplace(t.id, std::move(t));
    std::vector<Task> ordered;
    for (const auto& id : g.TopologicalOrder()) ordered.push_back(std::move(by_id[id]));
    ready = std::move(ordered);
  }
  return ready;
}

constexpr char kReaperActor[] = "lease-reaper";

Result<ReapResult> ReapExpired(Connection& c) {
  ReapResult out;
  std::string now = NowTimestamp();
  std::vector<Task> expired;
  {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kTaskCols + kTaskFrom +
                                          " WHERE t.lease_expires_at IS NOT NULL"
                                          " AND t.lease_expires_at < ? AND t.status = 'active'"
                                          " ORDER BY t.lease_expires_at"));
    s.Bind(1, now);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      expired.push_back(ReadTask(s));
    }
  }
  for (const auto& t : expired) {
    bool retry = t.retry_count < t.max_retries;
    std::string to = retry ? "pending" : "failed";
    std::string note =
        "lease of " + t.lease_owner.value_or("?") + " expired at " +
        t.lease_expires_at.value_or("?") +
        (retry ? "; retry " + std::to_string(t.retry_count + 1) + " of " +
                     std::to_string(t.max_retries)
               : "; no retries left (max_retries " + std::to_string(t.max_retries) + ")");
    std::string error_log = t.error_log;
    if (!retry) error_log += (error_log.empty() ? "" : "\n") + ("[" + now + "] " + note);
    DS_ASSIGN_OR_RETURN(
        Stmt u, c.Prepare("UPDATE micro_tasks SET status = ?2, retry_count = retry_count + ?3,"
                          " error_log = ?4, lease_owner = NULL, lease_expires_at = NULL,"
                          " version = version + 1, updated_at = ?5 WHERE id = ?1"));
    u.Bind(1, t.id).Bind(2, to).Bind(3, static_cast<int64_t>(retry)).Bind(4, error_log);
    u.Bind(5, now);
    DS_RETURN_IF_ERROR(u.Run());
    DS_RETURN_IF_ERROR(InsertEvent(c, t.id, t.status, to, kReaperActor, note));
    DS_RETURN_IF_ERROR(RollUp(c, t.phase_id, t.plan_id));
    (retry ? out.requeued : out.failed).push_back(t.id);
  }
  return out;
}

}  // namespace

TaskService::TaskService(Database& db) : db_(db) {}

// ---------------- projects ----------------

Result<Project> TaskService::CreateProject(const std::string& name,
                                           const std::optional<std::string>& root) {
  std::optional<Project> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Project p, InsertProject(c, name, root));
    out = std::move(p);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<std::vector<Project>> TaskService::ListProjects() {
  std::vector<Project> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(out, ds::ListProjects(c));
    return Status::Ok();
  }));
  return out;
}

Result<Project> TaskService::GetProject(const std::string& name_or_id) {
  std::optional<Project> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(out, FindProject(c, name_or_id));
    return Status::Ok();
  }));
  if (!out) return Status::NotFound("project \"" + name_or_id + "\" does not exist");
  return std::move(*out);
}

// ---------------- plans ----------------

Result<Plan> TaskService::CreatePlan(const PlanInput& in) {
  Plan p;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Project proj, ProjectForWrite(c, in.project));
    p.id = NewId("pln");
    p.project_id = proj.id;
    p.title = in.title;
    p.description = in.description;
    p.objectives = in.objectives;
    p.expected_outcome = in.expected_outcome;
    p.status = in.status;
    p.priority = in.priority;
    p.estimated_hours = in.estimated_hours;
    p.tags = in.tags;
    p.metadata = in.metadata;
    p.created_at = p.updated_at = NowTimestamp();
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare("INSERT INTO intervention_plans(id, project_id, title, description, objectives,"
                  " expected_outcome, status, priority, estimated_hours, tags, metadata, version,"
                  " created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,1,?,?)"));
    s.Bind(1, p.id).Bind(2, p.project_id).Bind(3, p.title).Bind(4, p.description);
    s.Bind(5, EncodeStringList(p.objectives)).Bind(6, p.expected_outcome).Bind(7, p.status);
    s.Bind(8, p.priority).Bind(9, p.estimated_hours).Bind(10, EncodeStringList(p.tags));
    s.Bind(11, p.metadata).Bind(12, p.created_at).Bind(13, p.updated_at);
    return s.Run();
  }));
  return p;
}

Result<Plan> TaskService::GetPlan(const std::string& id) {
  std::optional<Plan> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Plan p, LoadPlan(c, id));
    out = std::move(p);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Page<Plan>> TaskService::ListPlans(const PlanFilter& f) {
  Page<Plan> page;
  DS_ASSIGN_OR_RETURN(std::string after, PagePosition(f.cursor));
  int limit = ClampLimit(f.limit);
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, f.project));
    if (!project_id) return Status::Ok();
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kPlanCols +
                                          " FROM intervention_plans WHERE project_id = ?1"
                                          " AND (?2 IS NULL OR status = ?2) AND id > ?3"
                                          " ORDER BY id LIMIT ?4"));
    s.Bind(1, *project_id).Bind(2, f.status).Bind(3, after).Bind(4, limit + 1);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.items.push_back(ReadPlan(s));
    }
    return Status::Ok();
  }));
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    page.next_cursor = PageCursor(page.items.back().id);
  }
  return page;
}

Result<Plan> TaskService::UpdatePlan(const std::string& id, const PlanPatch& patch) {
  std::optional<Plan> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Plan p, LoadPlan(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("plan", id, p.version, patch.expected_version));
    bool status_changed = false;
    if (patch.status && *patch.status != p.status) {
      if (!IsPlanTransitionAllowed(p.status, *patch.status)) {
        auto allowed = AllowedPlanTransitions(p.status);
        std::string why = *patch.status == "completed"
                              ? " (a plan completes itself when all its phases are done)"
                              : "";
        return Status::Conflict("plan " + id + " cannot move from " + p.status + " to " +
                                *patch.status + why)
            .WithDetail("from", json::string(p.status))
            .WithDetail("to", json::string(*patch.status))
            .WithDetail("allowed", ToJsonArray(allowed));
      }
      p.status = *patch.status;
      status_changed = true;
    }
    if (patch.title) p.title = *patch.title;
    if (patch.description) p.description = *patch.description;
    if (patch.expected_outcome) p.expected_outcome = *patch.expected_outcome;
    if (patch.objectives) p.objectives = *patch.objectives;
    if (patch.tags) p.tags = *patch.tags;
    if (patch.priority) p.priority = *patch.priority;
    if (patch.clear_estimated_hours) p.estimated_hours.reset();
    if (patch.estimated_hours) p.estimated_hours = *patch.estimated_hours;
    if (patch.actual_hours) p.actual_hours = *patch.actual_hours;
    if (patch.metadata) p.metadata = *patch.metadata;
    p.version += 1;
    p.updated_at = NowTimestamp();
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "UPDATE intervention_plans SET title=?2, description=?3, objectives=?4,"
            " expected_outcome=?5, status=?6, priority=?7, estimated_hours=?8, actual_hours=?9,"
            " tags=?10, metadata=?11, version=?12, updated_at=?13 WHERE id=?1"));
    s.Bind(1, p.id).Bind(2, p.title).Bind(3, p.description).Bind(4, EncodeStringList(p.objectives));
    s.Bind(5, p.expected_outcome).Bind(6, p.status).Bind(7, p.priority);
    s.Bind(8, p.estimated_hours).Bind(9, p.actual_hours).Bind(10, EncodeStringList(p.tags));
    s.Bind(11, p.metadata).Bind(12, p.version).Bind(13, p.updated_at);
    DS_RETURN_IF_ERROR(s.Run());
    // Activating a plan whose phases are all done completes it at once.
    if (status_changed && p.status == "active") DS_RETURN_IF_ERROR(RollUpPlan(c, id));
    DS_ASSIGN_OR_RETURN(Plan fresh, LoadPlan(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Status TaskService::DeletePlan(const std::string& id, std::optional<int64_t> expected_version) {
  return db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Plan p, LoadPlan(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("plan", id, p.version, expected_version));
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM intervention_plans WHERE id = ?"));
    s.Bind(1, id);
    return s.Run();
  });
}

namespace {
Result<Progress> ComputeProgress(Connection& c, const std::string& plan_id) {
  Progress pr;
  DS_ASSIGN_OR_RETURN(
      Stmt s,
      c.Prepare("SELECT t.status, count(*), coalesce(sum(t.context_tokens_used), 0),"
                " coalesce(sum(t.actual_duration_minutes), 0)"
                " FROM micro_tasks t JOIN phases ph ON ph.id = t.phase_id WHERE ph.plan_id = ?"
                " GROUP BY t.status"));
  s.Bind(1, plan_id);
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    std::string st = s.Text(0);
    int n = static_cast<int>(s.Int(1));
    pr.total += n;
    pr.context_tokens_used += s.Int(2);
    pr.actual_minutes += s.Int(3);
    if (st == "pending")
      pr.pending = n;
    else if (st == "active")
      pr.active = n;
    else if (st == "completed")
      pr.completed = n;
    else if (st == "failed")
      pr.failed = n;
    else if (st == "skipped")
      pr.skipped = n;
    else if (st == "blocked")
      pr.blocked = n;
  }
  if (pr.total > 0) {
    pr.percent = std::round(1000.0 * (pr.completed + pr.skipped) / pr.total) / 10.0;
  }
  return pr;
}
}  // namespace

Result<Progress> TaskService::PlanProgress(const std::string& plan_id) {
  Progress out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadPlan(c, plan_id).status());
    DS_ASSIGN_OR_RETURN(out, ComputeProgress(c, plan_id));
    return Status::Ok();
  }));
  return out;
}

// ---------------- phases ----------------

Result<Phase> TaskService::CreatePhase(const std::string& plan_id, const PhaseInput& in) {
  std::optional<Phase> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Plan plan, LoadPlan(c, plan_id));
    DS_RETURN_IF_ERROR(ValidatePhaseDeps(c, plan.id, nullptr, in.depends_on));
    int64_t order = 0;
    if (in.sequence_order) {
      order = *in.sequence_order;
    } else {
      DS_ASSIGN_OR_RETURN(Stmt m, c.Prepare("SELECT coalesce(max(sequence_order) + 1, 0) "
                                            "FROM phases WHERE plan_id = ?"));
      m.Bind(1, plan_id);
      DS_ASSIGN_OR_RETURN(bool row, m.Step());
      (void)row;
      order = m.Int(0);
    }
    std::string id = NewId("phs");
    std::string now = NowTimestamp();
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare("INSERT INTO phases(id, plan_id, name, description, sequence_order, status,"
                  " estimated_minutes, completion_criteria, version, created_at, updated_at)"
                  " VALUES(?,?,?,?,?,'pending',?,?,1,?,?)"));
    s.Bind(1, id).Bind(2, plan_id).Bind(3, in.name).Bind(4, in.description).Bind(5, order);
    s.Bind(6, in.estimated_minutes).Bind(7, in.completion_criteria).Bind(8, now).Bind(9, now);
    DS_RETURN_IF_ERROR(s.Run());
    DS_RETURN_IF_ERROR(InsertPhaseDeps(c, id, in.depends_on));
    // A new, empty phase keeps a completed plan completed only if it has work.
    DS_RETURN_IF_ERROR(RollUpPlan(c, plan_id));
    DS_ASSIGN_OR_RETURN(Phase p, LoadPhase(c, id));
    out = std::move(p);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Phase> TaskService::GetPhase(const std::string& id) {
  std::optional<Phase> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Phase p, LoadPhase(c, id));
    out = std::move(p);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<std::vector<Phase>> TaskService::ListPhases(const std::string& plan_id) {
  std::vector<Phase> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadPlan(c, plan_id).status());
    DS_ASSIGN_OR_RETURN(out, LoadPhases(c, plan_id));
    return Status::Ok();
  }));
  return out;
}

Result<Phase> TaskService::UpdatePhase(const std::string& id, const PhasePatch& patch) {
  std::optional<Phase> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Phase p, LoadPhase(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("phase", id, p.version, patch.expected_version));
    if (patch.name) p.name = *patch.name;
    if (patch.description) p.description = *patch.description;
    if (patch.completion_criteria) p.completion_criteria = *patch.completion_criteria;
    if (patch.sequence_order) p.sequence_order = *patch.sequence_order;
    if (patch.estimated_minutes) p.estimated_minutes = *patch.estimated_minutes;
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "UPDATE phases SET name=?2, description=?3, completion_criteria=?4, sequence_order=?5,"
            " estimated_minutes=?6, version=version+1, updated_at=?7 WHERE id=?1"));
    s.Bind(1, id).Bind(2, p.name).Bind(3, p.description).Bind(4, p.completion_criteria);
    s.Bind(5, p.sequence_order).Bind(6, p.estimated_minutes).Bind(7, NowTimestamp());
    DS_RETURN_IF_ERROR(s.Run());
    if (patch.depends_on) {
      DS_RETURN_IF_ERROR(ValidatePhaseDeps(c, p.plan_id, &id, *patch.depends_on));
      DS_ASSIGN_OR_RETURN(Stmt d, c.Prepare("DELETE FROM phase_dependencies WHERE phase_id = ?"));
      d.Bind(1, id);
      DS_RETURN_IF_ERROR(d.Run());
      DS_RETURN_IF_ERROR(InsertPhaseDeps(c, id, *patch.depends_on));
      DS_RETURN_IF_ERROR(CheckAcyclic(c, p.plan_id));
    }
    DS_ASSIGN_OR_RETURN(Phase fresh, LoadPhase(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Status TaskService::DeletePhase(const std::string& id, std::optional<int64_t> expected_version) {
  return db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Phase p, LoadPhase(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("phase", id, p.version, expected_version));
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM phases WHERE id = ?"));
    s.Bind(1, id);
    DS_RETURN_IF_ERROR(s.Run());
    return RollUpPlan(c, p.plan_id);
  });
}

// ---------------- tasks ----------------

Result<Task> TaskService::CreateTask(const std::string& phase_id, const TaskInput& in) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Phase phase, LoadPhase(c, phase_id));
    DS_ASSIGN_OR_RETURN(Plan plan, LoadPlan(c, phase.plan_id));
    if (!IsPlanOpen(plan.status) && plan.status != "completed") {
      return Status::Conflict("plan " + plan.id + " is " + plan.status +
                              "; tasks cannot be added to it");
    }
    Task t;
    t.id = NewId("tsk");
    t.phase_id = phase_id;
    t.plan_id = phase.plan_id;
    std::string now = NowTimestamp();
    int estimated = in.estimated_minutes.value_or(in.max_duration_minutes);
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "INSERT INTO micro_tasks(id, phase_id, title, description, task_type, status, priority,"
            " max_duration_minutes, estimated_minutes, max_context_tokens, assigned_agent,"
            " input_files, output_files, acceptance_criteria, notes, max_retries, version,"
            " created_at, updated_at) VALUES(?,?,?,?,?,'pending',?,?,?,?,?,?,?,?,?,?,1,?,?)"));
    s.Bind(1, t.id).Bind(2, phase_id).Bind(3, in.title).Bind(4, in.description);
    s.Bind(5, in.task_type).Bind(6, in.priority).Bind(7, in.max_duration_minutes);
    s.Bind(8, estimated).Bind(9, in.max_context_tokens).Bind(10, in.assigned_agent);
    s.Bind(11, EncodeStringList(in.input_files)).Bind(12, EncodeStringList(in.output_files));
    s.Bind(13, EncodeStringList(in.acceptance_criteria))
        .Bind(14, in.notes)
        .Bind(15, in.max_retries);
    s.Bind(16, now).Bind(17, now);
    DS_RETURN_IF_ERROR(s.Run());
    DS_RETURN_IF_ERROR(AddTaskDeps(c, t, in.depends_on));
    DS_RETURN_IF_ERROR(InsertEvent(c, t.id, std::nullopt, "pending", "system", "created"));
    DS_RETURN_IF_ERROR(RollUp(c, phase_id, phase.plan_id));
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, t.id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Task> TaskService::GetTask(const std::string& id) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, id));
    out = std::move(t);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Page<Task>> TaskService::ListTasks(const TaskFilter& f) {
  Page<Task> page;
  DS_ASSIGN_OR_RETURN(std::string after, PagePosition(f.cursor));
  int limit = ClampLimit(f.limit);
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    std::optional<std::string> project_id;
    if (f.project || (!f.plan_id && !f.phase_id)) {
      DS_ASSIGN_OR_RETURN(project_id, ProjectIdForRead(c, f.project));
      if (!project_id) return Status::Ok();
    }
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(std::string("SELECT ") + kTaskCols + kTaskFrom +
                  " WHERE (?1 IS NULL OR pl.project_id = ?1) AND (?2 IS NULL OR t.status = ?2)"
                  " AND (?3 IS NULL OR ph.plan_id = ?3) AND (?4 IS NULL OR t.phase_id = ?4)"
                  " AND (?5 IS NULL OR t.task_type = ?5) AND (?6 IS NULL OR t.assigned_agent = ?6)"
                  " AND (?7 IS NULL OR t.priority >= ?7) AND t.id > ?8 ORDER BY t.id LIMIT ?9"));
    s.Bind(1, project_id).Bind(2, f.status).Bind(3, f.plan_id).Bind(4, f.phase_id);
    s.Bind(5, f.task_type).Bind(6, f.assigned_agent);
    if (f.priority_min)
      s.Bind(7, *f.priority_min);
    else
      s.BindNull(7);
    s.Bind(8, after).Bind(9, limit + 1);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.items.push_back(ReadTask(s));
    }
    for (auto& t : page.items) DS_RETURN_IF_ERROR(LoadTaskDeps(c, &t));
    return Status::Ok();
  }));
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    page.next_cursor = PageCursor(page.items.back().id);
  }
  return page;
}

Result<Task> TaskService::UpdateTask(const std::string& id, const TaskPatch& patch) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("task", id, t.version, patch.expected_version));
    if (patch.title) t.title = *patch.title;
    if (patch.description) t.description = *patch.description;
    if (patch.task_type) t.task_type = *patch.task_type;
    if (patch.notes) t.notes = *patch.notes;
    if (patch.priority) t.priority = *patch.priority;
    if (patch.max_duration_minutes) {
      t.max_duration_minutes = *patch.max_duration_minutes;
      if (!patch.estimated_minutes && t.estimated_minutes > t.max_duration_minutes) {
        t.estimated_minutes = t.max_duration_minutes;
      }
    }
    if (patch.estimated_minutes) t.estimated_minutes = *patch.estimated_minutes;
    if (t.estimated_minutes > t.max_duration_minutes) {
      return Status::InvalidArgument("task.estimated_minutes (" +
                                     std::to_string(t.estimated_minutes) +
                                     ") must not exceed max_duration_minutes (" +
                                     std::to_string(t.max_duration_minutes) + ")")
          .WithDetail("field", "estimated_minutes");
    }
    if (patch.max_retries) t.max_retries = *patch.max_retries;
    if (patch.max_context_tokens) t.max_context_tokens = *patch.max_context_tokens;
    if (patch.clear_assigned_agent) t.assigned_agent.reset();
    if (patch.assigned_agent) t.assigned_agent = *patch.assigned_agent;
    if (patch.input_files) t.input_files = *patch.input_files;
    if (patch.output_files) t.output_files = *patch.output_files;
    if (patch.acceptance_criteria) t.acceptance_criteria = *patch.acceptance_criteria;
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "UPDATE micro_tasks SET title=?2, description=?3, task_type=?4, notes=?5, priority=?6,"
            " max_duration_minutes=?7, estimated_minutes=?8, max_retries=?9, "
            "max_context_tokens=?10,"
            " assigned_agent=?11, input_files=?12, output_files=?13, acceptance_criteria=?14,"
            " version=version+1, updated_at=?15 WHERE id=?1"));
    s.Bind(1, id).Bind(2, t.title).Bind(3, t.description).Bind(4, t.task_type).Bind(5, t.notes);
    s.Bind(6, t.priority).Bind(7, t.max_duration_minutes).Bind(8, t.estimated_minutes);
    s.Bind(9, t.max_retries).Bind(10, t.max_context_tokens).Bind(11, t.assigned_agent);
    s.Bind(12, EncodeStringList(t.input_files)).Bind(13, EncodeStringList(t.output_files));
    s.Bind(14, EncodeStringList(t.acceptance_criteria)).Bind(15, NowTimestamp());
    DS_RETURN_IF_ERROR(s.Run());
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Status TaskService::DeleteTask(const std::string& id, std::optional<int64_t> expected_version) {
  return db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("task", id, t.version, expected_version));
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM micro_tasks WHERE id = ?"));
    s.Bind(1, id);
    DS_RETURN_IF_ERROR(s.Run());
    return RollUp(c, t.phase_id, t.plan_id);
  });
}

Result<Task> TaskService::Transition(const std::string& id, const TransitionInput& in) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, id));
    DS_RETURN_IF_ERROR(CheckVersion("task", id, t.version, in.expected_version));
    DS_RETURN_IF_ERROR(CheckLeaseOwner(t, in.actor, in.force));
    if (!IsTaskTransitionAllowed(t.status, in.to)) {
      auto allowed = AllowedTaskTransitions(t.status);
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::Conflict(
                 "task " + id + " cannot move from " + t.status + " to " + in.to +
                 (allowed.empty() ? " (" + t.status + " is final)" : "; allowed: " + list))
          .WithDetail("from", json::string(t.status))
          .WithDetail("to", json::string(in.to))
          .WithDetail("allowed", ToJsonArray(allowed));
    }
    if (in.to == "active") {
      DS_ASSIGN_OR_RETURN(Plan plan, LoadPlan(c, t.plan_id));
      if (!IsPlanOpen(plan.status)) {
        return Status::Conflict("plan " + plan.id + " is " + plan.status +
                                "; its tasks cannot start");
      }
      DS_ASSIGN_OR_RETURN(auto unmet, UnmetPrerequisites(c, t));
      if (!unmet.empty()) {
        json::array a;
        std::string list;
        for (const auto& u : unmet) {
          a.emplace_back(u);
          list += (list.empty() ? "" : ", ") + u;
        }
        return Status::Conflict("task " + id + " cannot start: waiting for " + list)
            .WithDetail("unmet", std::move(a));
      }
    }
    if (t.status == "failed" && in.to == "pending" && t.retry_count >= t.max_retries) {
      return Status::Conflict("task " + id + " has used its " + std::to_string(t.max_retries) +
                              " retries; raise max_retries to retry it again")
          .WithDetail("retry_count", t.retry_count)
          .WithDetail("max_retries", t.max_retries);
    }
    std::string now = NowTimestamp();
    int64_t now_ms = NowMillis();
    std::optional<int64_t> duration;
    if (in.to == "completed" && t.started_at) {
      if (auto started = ParseTimestamp(*t.started_at)) {
        duration = std::max<int64_t>(0, (now_ms - *started + 59999) / 60000);
      }
    }
    std::string error_log = t.error_log;
    if (in.to == "failed" && !in.note.empty()) {
      error_log += (error_log.empty() ? "" : "\n") + ("[" + now + "] " + in.note);
    }
    // A retry is a second attempt: active -> pending (released) or failed ->
    // pending. blocked -> pending is an unblock, not a retry.
    bool retry = in.to == "pending" && (t.status == "active" || t.status == "failed");
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare("UPDATE micro_tasks SET status = ?2, version = version + 1, updated_at = ?3,"
                  " started_at = CASE WHEN ?2 = 'active' THEN coalesce(started_at, ?3) ELSE "
                  "started_at END,"
                  " completed_at = CASE WHEN ?2 IN ('completed','skipped') THEN ?3 ELSE NULL END,"
                  " actual_duration_minutes = CASE WHEN ?2 = 'completed' THEN ?4"
                  "   ELSE actual_duration_minutes END,"
                  " context_tokens_used = coalesce(?5, context_tokens_used),"
                  " error_log = ?6, retry_count = retry_count + ?7,"
                  " assigned_agent = CASE WHEN ?2 = 'active' THEN coalesce(?8, assigned_agent)"
                  "   ELSE assigned_agent END,"
                  " lease_owner = NULL, lease_expires_at = NULL"
                  " WHERE id = ?1"));
    s.Bind(1, id).Bind(2, in.to).Bind(3, now).Bind(4, duration).Bind(5, in.context_tokens_used);
    s.Bind(6, error_log).Bind(7, static_cast<int64_t>(retry)).Bind(8, in.actor);
    DS_RETURN_IF_ERROR(s.Run());
    std::string note = in.note;
    if (in.force && t.lease_owner && in.actor != t.lease_owner) {
      note = "forced over the lease of " + *t.lease_owner + (note.empty() ? "" : "; " + note);
    }
    DS_RETURN_IF_ERROR(InsertEvent(c, id, t.status, in.to, in.actor.value_or(in.channel), note));
    DS_RETURN_IF_ERROR(RollUp(c, t.phase_id, t.plan_id));
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Task> TaskService::AddDependency(const std::string& task_id, const TaskDependency& dep) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, task_id));
    if (dep.id == task_id) {
      return Status::Conflict("task " + task_id + " cannot depend on itself")
          .WithDetail("cycle", CycleToJson({task_id, task_id}));
    }
    auto prereq = LoadTask(c, dep.id);
    if (!prereq.ok()) {
      if (prereq.status().code() == StatusCode::kNotFound) {
        return Status::InvalidArgument("depends_on: task " + dep.id + " does not exist")
            .WithDetail("field", "depends_on");
      }
      return prereq.status();
    }
    // Would the new edge dep -> task close a cycle? Only if task already reaches dep.
    DS_ASSIGN_OR_RETURN(PlanGraphModel m, BuildPlanGraph(c, t.plan_id));
    if (prereq->plan_id == t.plan_id) {
      auto path = m.graph.Path(*m.graph.Find(task_id), *m.graph.Find(dep.id));
      if (!path.empty()) {
        path.push_back(task_id);
        return Status::Conflict(
                   "making " + task_id + " depend on " + dep.id +
                   " would create a cycle (prerequisite -> dependent): " + CycleToText(path))
            .WithDetail("cycle", CycleToJson(path));
      }
    }
    DS_RETURN_IF_ERROR(AddTaskDeps(c, t, {dep}));
    DS_RETURN_IF_ERROR(BumpTask(c, task_id));
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, task_id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Task> TaskService::RemoveDependency(const std::string& task_id,
                                           const std::string& depends_on) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadTask(c, task_id).status());
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM task_dependencies WHERE task_id = ? "
                                          "AND depends_on = ?"));
    s.Bind(1, task_id).Bind(2, depends_on);
    DS_RETURN_IF_ERROR(s.Run());
    if (c.Changes() == 0) {
      return Status::NotFound("task " + task_id + " does not depend on " + depends_on);
    }
    DS_RETURN_IF_ERROR(BumpTask(c, task_id));
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, task_id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<std::vector<TaskEvent>> TaskService::Events(const std::string& task_id) {
  std::vector<TaskEvent> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadTask(c, task_id).status());
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, task_id, from_status, to_status, actor, "
                                          "note, at FROM task_events WHERE task_id = ? "
                                          "ORDER BY id"));
    s.Bind(1, task_id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(
          {s.Int(0), s.Text(1), s.OptText(2), s.Text(3), s.Text(4), s.Text(5), s.Text(6)});
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<Task>> TaskService::Ready(const ReadyFilter& f) {
  std::vector<Task> ready;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    std::optional<std::string> project_id;
    if (f.plan_id) {
      DS_RETURN_IF_ERROR(LoadPlan(c, *f.plan_id).status());
    }
    if (f.project || !f.plan_id) {
      DS_ASSIGN_OR_RETURN(project_id, ProjectIdForRead(c, f.project));
      if (!project_id) return Status::Ok();
    }
    DS_ASSIGN_OR_RETURN(ready, LoadReady(c, project_id, f.plan_id));
    return Status::Ok();
  }));
  if (static_cast<int>(ready.size()) > f.limit) ready.resize(std::max(0, f.limit));
  return ready;
}

Result<std::optional<Task>> TaskService::Claim(const ClaimInput& in) {
  if (in.lease_seconds < kMinLeaseSeconds || in.lease_seconds > kMaxLeaseSeconds ||
      in.agent.empty()) {
    return Status::InvalidArgument("claim needs an agent and lease_seconds in " +
                                   std::to_string(kMinLeaseSeconds) + ".." +
                                   std::to_string(kMaxLeaseSeconds));
  }
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    out.reset();
    DS_RETURN_IF_ERROR(ReapExpired(c).status());
    std::optional<std::string> project_id;
    if (in.plan_id) DS_RETURN_IF_ERROR(LoadPlan(c, *in.plan_id).status());
    if (in.project || !in.plan_id) {
      DS_ASSIGN_OR_RETURN(project_id, ProjectIdForRead(c, in.project));
      if (!project_id) return Status::Ok();
    }
    DS_ASSIGN_OR_RETURN(auto ready, LoadReady(c, project_id, in.plan_id, /*first_only=*/true));
    if (ready.empty()) return Status::Ok();
    const Task& t = ready.front();
    std::string now = NowTimestamp();
    std::string expires = FormatTimestamp(NowMillis() + int64_t{in.lease_seconds} * 1000);
    DS_ASSIGN_OR_RETURN(Stmt u,
                        c.Prepare("UPDATE micro_tasks SET status = 'active', assigned_agent = ?2,"
                                  " lease_owner = ?2, lease_expires_at = ?3,"
                                  " started_at = coalesce(started_at, ?4), completed_at = NULL,"
                                  " version = version + 1, updated_at = ?4"
                                  " WHERE id = ?1 AND status = 'pending'"));
    u.Bind(1, t.id).Bind(2, in.agent).Bind(3, expires).Bind(4, now);
    DS_RETURN_IF_ERROR(u.Run());
    if (c.Changes() != 1) return Status::Internal("claim lost task " + t.id + " inside its lock");
    DS_RETURN_IF_ERROR(
        InsertEvent(c, t.id, t.status, "active", in.agent,
                    "claimed with a " + std::to_string(in.lease_seconds) + " s lease"));
    DS_RETURN_IF_ERROR(RollUp(c, t.phase_id, t.plan_id));
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, t.id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return out;
}

Result<Task> TaskService::Heartbeat(const std::string& id, const HeartbeatInput& in) {
  std::optional<Task> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Task t, LoadTask(c, id));
    if (t.status != "active") {
      return Status::Conflict("task " + id + " is " + t.status +
                              ", not active; only an active task has a lease to extend")
          .WithDetail("task_status", json::string(t.status));
    }
    DS_RETURN_IF_ERROR(CheckLeaseOwner(t, in.agent, in.force));
    std::string now = NowTimestamp();
    std::string expires = FormatTimestamp(NowMillis() + int64_t{in.lease_seconds} * 1000);
    // A task started by hand (no lease) becomes leased by whoever heartbeats it.
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE micro_tasks SET lease_expires_at = ?2,"
                                          " lease_owner = coalesce(lease_owner, ?3),"
                                          " version = version + 1, updated_at = ?4 WHERE id = ?1"));
    u.Bind(1, id).Bind(2, expires).Bind(3, in.agent).Bind(4, now);
    DS_RETURN_IF_ERROR(u.Run());
    if (t.lease_owner && *t.lease_owner != in.agent) {
      DS_RETURN_IF_ERROR(
          InsertEvent(c, id, t.status, t.status, in.agent,
                      "lease of " + *t.lease_owner + " extended to " + expires + " (forced)"));
    }
    DS_ASSIGN_OR_RETURN(Task fresh, LoadTask(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<ReapResult> TaskService::ReapExpiredLeases() {
  ReapResult out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(out, ReapExpired(c));
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> TaskService::RecomputeRollups() {
  int64_t phases = 0;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    phases = 0;
    std::vector<std::pair<std::string, std::string>> ids;
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT ph.id, ph.plan_id FROM phases ph"
                                          " JOIN intervention_plans pl ON pl.id = ph.plan_id"
                                          " WHERE pl.status IN ('draft','active','completed')"
                                          " ORDER BY ph.plan_id, ph.id"));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ids.emplace_back(s.Text(0), s.Text(1));
    }
    for (const auto& [phase, plan] : ids) {
      DS_RETURN_IF_ERROR(RollUpPhase(c, phase));
      ++phases;
    }
    std::string last_plan;
    for (const auto& [phase, plan] : ids) {
      if (plan == last_plan) continue;
      last_plan = plan;
      DS_RETURN_IF_ERROR(RollUpPlan(c, plan));
    }
    return Status::Ok();
  }));
  return phases;
}

Result<PlanGraph> TaskService::Graph(const std::string& plan_id) {
  PlanGraph out;
  out.plan_id = plan_id;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadPlan(c, plan_id).status());
    DS_ASSIGN_OR_RETURN(PlanGraphModel m, BuildPlanGraph(c, plan_id));
    out.order = m.graph.TopologicalOrder();
    out.levels = m.graph.Levels();
    auto cp = m.graph.LongestPath();
    out.critical_path = std::move(cp.nodes);
    out.critical_path_minutes = cp.weight;
    out.tasks = std::move(m.tasks);
    out.phases = std::move(m.phases);
    DS_ASSIGN_OR_RETURN(out.progress, ComputeProgress(c, plan_id));
    return Status::Ok();
  }));
  return out;
}

json::object ToJson(const Progress& p) {
  return {{"total", p.total},
          {"pending", p.pending},
          {"active", p.active},
          {"completed", p.completed},
          {"failed", p.failed},
          {"skipped", p.skipped},
          {"blocked", p.blocked},
          {"percent", JsonNumber(p.percent)},
          {"context_tokens_used", p.context_tokens_used},
          {"actual_minutes", p.actual_minutes}};
}

json::object ToJson(const PlanGraph& g) {
  json::array nodes, edges, phases, order, levels, critical;
  for (const auto& t : g.tasks) {
    nodes.push_back(json::object{{"id", t.id},
                                 {"title", t.title},
                                 {"phase_id", t.phase_id},
                                 {"status", t.status},
                                 {"priority", t.priority},
                                 {"estimated_minutes", t.estimated_minutes}});
    for (const auto& d : t.depends_on) {
      edges.push_back(json::object{{"from", d.id}, {"to", t.id}, {"kind", d.kind}});
    }
  }
  for (const auto& p : g.phases) {
    json::array deps;
    for (const auto& d : p.depends_on) deps.emplace_back(d);
    phases.push_back(json::object{
        {"id", p.id}, {"name", p.name}, {"status", p.status}, {"depends_on", std::move(deps)}});
  }
  for (const auto& id : g.order) order.emplace_back(id);
  for (const auto& level : g.levels) {
    json::array l;
    for (const auto& id : level) l.emplace_back(id);
    levels.push_back(std::move(l));
  }
  for (const auto& id : g.critical_path) critical.emplace_back(id);
  return {{"plan_id", g.plan_id},
          {"nodes", std::move(nodes)},
          {"edges", std::move(edges)},
          {"phases", std::move(phases)},
          {"order", std::move(order)},
          {"levels", std::move(levels)},
          {"critical_path",
           json::object{{"tasks", std::move(critical)}, {"minutes", g.critical_path_minutes}}},
          {"progress", ToJson(g.progress)}};
}

}  // namespace ds::tasks
