// SessionService keeps work sessions (an assistant's session, or any span of
// work): start (optionally keyed by the assistant's own session id), end, and
// the summary written when a session ends — a deterministic markdown digest
// of the session's time range in its project (tasks completed, files
// touched, decisions, errors) stored as a `context` memory linked to the
// session, so the next session can start from it.
//
// Ending a session queues a `session_summary` job in the same transaction;
// Summarize is idempotent (same rows in, same text out; memories are
// deduplicated by content) and Latest writes a missing summary itself, so a
// summary is never lost to a stopped worker.
// Thread-safety: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "memory/memory_service.h"
#include "store/database.h"

namespace ds::engine {

struct Session {
  std::string id;
  std::string project_id;
  std::string agent;
  std::optional<std::string> external_id, plan_id;
  std::string status = "active";  // active | ended
  std::string summary;            // markdown; empty until summarised
  std::optional<int64_t> summary_memory_id;
  std::string started_at, updated_at;
  std::optional<std::string> ended_at;
};

struct SessionInput {
  std::optional<std::string> project, agent, external_id, plan_id;
};

// What a summary is made of (SessionService gathers it; RenderSummary is pure).
struct SessionDigest {
  Session session;
  std::string project_name;
  struct TaskLine {
    std::string id, title, task_type, note;
  };
  std::vector<TaskLine> completed;
  std::vector<std::string> files;  // sorted, unique
  struct MemoryLine {
    int64_t id;
    std::string text;  // first line, at most 200 characters
  };
  std::vector<MemoryLine> decisions, errors, learnings;
};

std::string RenderSummary(const SessionDigest& digest);

Result<SessionInput> DecodeSessionInput(const json::value& body,
                                        const std::optional<std::string>& header_agent);
json::object ToJson(const Session& s);

class SessionService {
 public:
  SessionService(Database& db, memory::MemoryService& memory);

  // A new active session; with an external_id already active in the project,
  // that session instead (created = false).
  Result<std::pair<Session, bool>> Start(const SessionInput& input);
  // Ends the session (idempotent) and queues its summary. `id` is ours
  // (ses_…) or an external id, looked up in `project` (default project when
  // absent): external ids are unique per project only.
  Result<Session> End(const std::string& id, const std::optional<std::string>& project = {});
  Result<Session> Get(const std::string& id, const std::optional<std::string>& project = {});
  // Notes activity (updated_at) on a session.
  Status RecordActivity(const std::string& id);
  // The most recently ended session of the project, summarised.
  Result<Session> Latest(const std::optional<std::string>& project);
  // Writes the summary of an ended session (the session_summary job).
  Result<Session> Summarize(const std::string& id);
  Result<SessionDigest> Digest(const std::string& id);

 private:
  Database& db_;
  memory::MemoryService& memory_;
};

}  // namespace ds::engine
