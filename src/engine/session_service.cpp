#include "engine/session_service.h"

#include <algorithm>
#include <set>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"
#include "engine/job_queue.h"
#include "store/projects.h"

namespace ds::engine {
namespace {

constexpr char kSessionCols[] =
    "id, project_id, agent, external_id, plan_id, status, summary, summary_memory_id, "
    "started_at, updated_at, ended_at";

Session ReadSession(const Stmt& s) {
  Session out;
  out.id = s.Text(0);
  out.project_id = s.Text(1);
  out.agent = s.Text(2);
  out.external_id = s.OptText(3);
  out.plan_id = s.OptText(4);
  out.status = s.Text(5);
  out.summary = s.Text(6);
  out.summary_memory_id = s.OptInt(7);
  out.started_at = s.Text(8);
  out.updated_at = s.Text(9);
  out.ended_at = s.OptText(10);
  return out;
}

// By our id (ses_…), else by external id within `project_id` (external ids
// are unique per project only).
Result<std::optional<Session>> FindSession(Connection& c, const std::string& id,
                                           const std::optional<std::string>& project_id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kSessionCols +
                                        " FROM work_sessions WHERE id = ?1 OR (external_id = ?1"
                                        " AND project_id = ?2) ORDER BY id = ?1 DESC LIMIT 1"));
  s.Bind(1, id).Bind(2, project_id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Session>();
  return std::optional<Session>(ReadSession(s));
}

Result<Session> LoadSession(Connection& c, const std::string& id,
                            const std::optional<std::string>& project_id = std::nullopt) {
  DS_ASSIGN_OR_RETURN(auto found, FindSession(c, id, project_id));
  if (!found) return Status::NotFound("session " + id + " does not exist");
  return std::move(*found);
}

// The project an external id is looked up in (nullopt: none exists yet).
Result<std::optional<std::string>> LookupProject(Connection& c, const std::string& id,
                                                 const std::optional<std::string>& project) {
  if (id.rfind("ses_", 0) == 0) return std::optional<std::string>();
  return ProjectIdForRead(c, project);
}

std::string Minutes(const std::string& from, const std::optional<std::string>& to) {
  auto a = ParseTimestamp(from);
  auto b = to ? ParseTimestamp(*to) : std::nullopt;
  if (!a || !b) return "";
  return " (" + std::to_string(std::max<int64_t>(0, (*b - *a) / 60000)) + " min)";
}

}  // namespace

std::string RenderSummary(const SessionDigest& d) {
  const Session& s = d.session;
  std::string out = "# Session summary: " + s.id;
  if (!s.agent.empty()) out += " (" + s.agent + ")";
  out += "\n\nProject " + d.project_name + ", " + s.started_at + " to " +
         s.ended_at.value_or("now") + Minutes(s.started_at, s.ended_at) + ".\n";
  if (d.completed.empty() && d.files.empty() && d.decisions.empty() && d.errors.empty() &&
      d.learnings.empty()) {
    out += "\nNo tasks were completed and nothing was recorded in this session.\n";
    return out;
  }
  out += "\n## Tasks completed (" + std::to_string(d.completed.size()) + ")\n";
  for (const auto& t : d.completed) {
    out += "- " + t.title + " [" + t.task_type + ", " + t.id + "]";
    if (!t.note.empty()) out += ": " + FirstLine(t.note, 200);
    out += "\n";
  }
  if (d.completed.empty()) out += "- none\n";
  out += "\n## Files touched (" + std::to_string(d.files.size()) + ")\n";
  for (const auto& f : d.files) out += "- " + f + "\n";
  if (d.files.empty()) out += "- none\n";
  auto section = [&out](const char* title, const std::vector<SessionDigest::MemoryLine>& lines) {
    out += std::string("\n## ") + title + " (" + std::to_string(lines.size()) + ")\n";
    for (const auto& m : lines) out += "- " + m.text + " (memory " + std::to_string(m.id) + ")\n";
    if (lines.empty()) out += "- none\n";
  };
  section("Decisions", d.decisions);
  section("Errors fixed", d.errors);
  section("Learnings", d.learnings);
  return out;
}

Result<SessionInput> DecodeSessionInput(const json::value& body,
                                        const std::optional<std::string>& header_agent) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "session"));
  ObjectReader r(*obj, "session");
  SessionInput in;
  in.project = r.String("project", false, 1, 200);
  in.agent = r.String("agent", false, 1, 200);
  in.external_id = r.String("external_id", false, 1, 200);
  in.plan_id = r.String("plan_id", false, 1, 100);
  DS_RETURN_IF_ERROR(r.Finish());
  if (!in.agent) in.agent = header_agent;
  return in;
}

json::object ToJson(const Session& s) {
  return {{"id", s.id},
          {"project_id", s.project_id},
          {"agent", s.agent},
          {"external_id", OptionalJson(s.external_id)},
          {"plan_id", OptionalJson(s.plan_id)},
          {"status", s.status},
          {"summary", s.summary},
          {"summary_memory_id", OptionalJson(s.summary_memory_id)},
          {"started_at", s.started_at},
          {"ended_at", OptionalJson(s.ended_at)},
          {"updated_at", s.updated_at}};
}

SessionService::SessionService(Database& db, memory::MemoryService& memory)
    : db_(db), memory_(memory) {}

Result<std::pair<Session, bool>> SessionService::Start(const SessionInput& in) {
  std::optional<std::pair<Session, bool>> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Project p, ProjectForWrite(c, in.project));
    if (in.plan_id) {
      DS_ASSIGN_OR_RETURN(Stmt q,
                          c.Prepare("SELECT project_id FROM intervention_plans WHERE id = ?"));
      q.Bind(1, *in.plan_id);
      DS_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) {
        return Status::InvalidArgument("session.plan_id: plan " + *in.plan_id + " does not exist")
            .WithDetail("field", "plan_id");
      }
      if (q.Text(0) != p.id) {
        return Status::InvalidArgument("session.plan_id: plan " + *in.plan_id +
                                       " belongs to another project")
            .WithDetail("field", "plan_id");
      }
    }
    std::string now = NowTimestamp();
    if (in.external_id) {
      DS_ASSIGN_OR_RETURN(Stmt q, c.Prepare(std::string("SELECT ") + kSessionCols +
                                            " FROM work_sessions WHERE project_id = ? AND "
                                            "external_id = ?"));
      q.Bind(1, p.id).Bind(2, *in.external_id);
      DS_ASSIGN_OR_RETURN(bool row, q.Step());
      if (row) {
        Session s = ReadSession(q);
        if (s.status == "ended") {
          // The assistant resumed a session it had ended: reopen it.
          DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE work_sessions SET status = 'active',"
                                                " ended_at = NULL, updated_at = ? WHERE id = ?"));
          u.Bind(1, now).Bind(2, s.id);
          DS_RETURN_IF_ERROR(u.Run());
          DS_ASSIGN_OR_RETURN(s, LoadSession(c, s.id));
        }
        out.emplace(std::move(s), false);
        return Status::Ok();
      }
    }
    std::string id = NewId("ses");
    DS_ASSIGN_OR_RETURN(Stmt ins, c.Prepare("INSERT INTO work_sessions(id, project_id, agent, "
                                            "external_id, plan_id, status, started_at, updated_at)"
                                            " VALUES(?,?,?,?,?,'active',?,?)"));
    ins.Bind(1, id).Bind(2, p.id).Bind(3, in.agent.value_or("")).Bind(4, in.external_id);
    ins.Bind(5, in.plan_id).Bind(6, now).Bind(7, now);
    DS_RETURN_IF_ERROR(ins.Run());
    DS_ASSIGN_OR_RETURN(Session s, LoadSession(c, id));
    out.emplace(std::move(s), true);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Session> SessionService::End(const std::string& id,
                                    const std::optional<std::string>& project) {
  std::optional<Session> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, LookupProject(c, id, project));
    DS_ASSIGN_OR_RETURN(Session s, LoadSession(c, id, project_id));
    if (s.status == "active") {
      std::string now = NowTimestamp();
      DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE work_sessions SET status = 'ended', "
                                            "ended_at = ?1, updated_at = ?1 WHERE id = ?2"));
      u.Bind(1, now).Bind(2, s.id);
      DS_RETURN_IF_ERROR(u.Run());
      EnqueueOptions opts;
      opts.dedup_key = "session_summary:" + s.id;
      opts.priority = 7;
      DS_RETURN_IF_ERROR(
          JobQueue::EnqueueIn(c, "session_summary", json::object{{"session_id", s.id}}, opts)
              .status());
    }
    DS_ASSIGN_OR_RETURN(Session fresh, LoadSession(c, s.id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<Session> SessionService::Get(const std::string& id,
                                    const std::optional<std::string>& project) {
  std::optional<Session> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, LookupProject(c, id, project));
    DS_ASSIGN_OR_RETURN(Session s, LoadSession(c, id, project_id));
    out = std::move(s);
    return Status::Ok();
  }));
  return std::move(*out);
}

Status SessionService::RecordActivity(const std::string& id) {
  return db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE work_sessions SET updated_at = ? WHERE id = ?"));
    u.Bind(1, NowTimestamp()).Bind(2, id);
    DS_RETURN_IF_ERROR(u.Run());
    if (c.Changes() == 0) return Status::NotFound("session " + id + " does not exist");
    return Status::Ok();
  });
}

Result<Session> SessionService::Latest(const std::optional<std::string>& project) {
  std::optional<Session> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, project));
    if (!project_id) return Status::Ok();
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kSessionCols +
                                          " FROM work_sessions WHERE project_id = ? AND status ="
                                          " 'ended' ORDER BY ended_at DESC, id DESC LIMIT 1"));
    s.Bind(1, *project_id);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out = ReadSession(s);
    return Status::Ok();
  }));
  if (!out) {
    return Status::NotFound("no ended session in project " + project.value_or(kDefaultProject));
  }
  if (out->summary.empty()) return Summarize(out->id);
  return std::move(*out);
}

Result<SessionDigest> SessionService::Digest(const std::string& id) {
  SessionDigest d;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(d.session, LoadSession(c, id));
    const Session& s = d.session;
    std::string until = s.ended_at.value_or(NowTimestamp());
    DS_ASSIGN_OR_RETURN(Stmt pn, c.Prepare("SELECT name FROM projects WHERE id = ?"));
    pn.Bind(1, s.project_id);
    DS_ASSIGN_OR_RETURN(bool prow, pn.Step());
    d.project_name = prow ? pn.Text(0) : s.project_id;
    std::set<std::string> files;
    // Tasks of the project completed in the session's range (the latest
    // completion of each, in completion order).
    DS_ASSIGN_OR_RETURN(Stmt t,
                        c.Prepare("SELECT t.id, t.title, t.task_type, e.note, t.output_files"
                                  " FROM task_events e JOIN micro_tasks t ON t.id = e.task_id"
                                  " JOIN phases ph ON ph.id = t.phase_id"
                                  " JOIN intervention_plans pl ON pl.id = ph.plan_id"
                                  " WHERE e.to_status = 'completed' AND e.at >= ?1 AND e.at <= ?2"
                                  "   AND pl.project_id = ?3 AND t.status = 'completed'"
                                  "   AND e.id = (SELECT max(e2.id) FROM task_events e2"
                                  "     WHERE e2.task_id = t.id AND e2.to_status = 'completed')"
                                  " ORDER BY e.at, e.id"));
    t.Bind(1, s.started_at).Bind(2, until).Bind(3, s.project_id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, t.Step());
      if (!row) break;
      d.completed.push_back({t.Text(0), t.Text(1), t.Text(2), t.Text(3)});
      for (auto& f : DecodeStringList(t.Text(4))) files.insert(std::move(f));
    }
    // Memories recorded in the session (linked to it, or unlinked in its
    // range), except what the engine wrote itself.
    DS_ASSIGN_OR_RETURN(Stmt m,
                        c.Prepare("SELECT id, content_type, content, file_path FROM semantic_memory"
                                  " WHERE project_id = ?3 AND source <> 'engine'"
                                  "   AND (session_id = ?4 OR (session_id IS NULL"
                                  "        AND created_at >= ?1 AND created_at <= ?2))"
                                  " ORDER BY created_at, id"));
    m.Bind(1, s.started_at).Bind(2, until).Bind(3, s.project_id).Bind(4, s.id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, m.Step());
      if (!row) break;
      std::string type = m.Text(1);
      SessionDigest::MemoryLine line{m.Int(0), FirstLine(m.Text(2), 200)};
      if (type == "decision") d.decisions.push_back(line);
      if (type == "error") d.errors.push_back(line);
      if (type == "learning") d.learnings.push_back(line);
      if (auto f = m.OptText(3)) files.insert(*f);
    }
    d.files.assign(files.begin(), files.end());
    return Status::Ok();
  }));
  return d;
}

Result<Session> SessionService::Summarize(const std::string& id) {
  DS_ASSIGN_OR_RETURN(SessionDigest d, Digest(id));
  if (d.session.status != "ended") {
    return Status::Conflict("session " + d.session.id + " is still active; end it first");
  }
  std::string text = RenderSummary(d);
  memory::MemoryInput in;
  in.project = d.session.project_id;
  in.session_id = d.session.id;
  in.plan_id = d.session.plan_id;
  in.content = text;
  in.content_type = "context";
  in.source = "engine";
  in.keywords = {"session-summary"};
  DS_ASSIGN_OR_RETURN(memory::StoreResult stored, memory_.Store(in));
  std::optional<Session> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE work_sessions SET summary = ?2, "
                                          "summary_memory_id = ?3, updated_at = ?4 WHERE id = ?1"));
    u.Bind(1, d.session.id).Bind(2, text).Bind(3, stored.memory.id).Bind(4, NowTimestamp());
    DS_RETURN_IF_ERROR(u.Run());
    DS_ASSIGN_OR_RETURN(Session fresh, LoadSession(c, d.session.id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return std::move(*out);
}

}  // namespace ds::engine
