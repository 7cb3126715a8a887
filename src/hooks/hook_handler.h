// Claude Code hooks (DESIGN.md §7): what DevStream does for each hook event,
// written once and run either inside the server (POST /api/v1/hooks/{event},
// index already loaded: the fast path) or in the `devstream hook` process
// when no server is reachable.
//
// A HookRequest is the event as Claude Code sent it plus what only the
// machine running Claude Code can know, gathered by PrepareHookRequest: the
// project (name of the git root above the event's cwd) and the content of
// files a PostToolUse changed. The handler answers the JSON Claude Code reads
// on stdout ({"hookSpecificOutput": {"hookEventName", "additionalContext"}})
// or nothing.
//   SessionStart       start (or resume) the work session; inject the last
//                      session's summary, the active plan's progress and the
//                      top ready tasks within the budget
//   UserPromptSubmit   inject the memories most relevant to the prompt
//                      within the budget (default 1,500 tokens), with ids;
//                      recorded in context_injections
//   PreToolUse         Write|Edit|MultiEdit: memories about the file
//   PostToolUse        Write|Edit|MultiEdit|NotebookEdit: a `code` memory per
//                      changed file (chunks of at most 12 KB; the newer
//                      snapshot supersedes the older); Bash with a non-zero
//                      exit: an `error` memory
//   PostToolUseFailure an `error` memory with the command and its output
//   Stop               records activity on the session
//   SessionEnd         ends the session, which queues its summary
// Ignored paths (.git, node_modules, build output, lock files, binaries)
// and secret files (.env, keys, credentials) are never stored.
// Thread-safety: Handle may run concurrently (the services are thread-safe).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "engine/session_service.h"
#include "memory/memory_service.h"
#include "tasks/task_service.h"

namespace ds::hooks {

struct HookFile {
  std::string path;     // relative to the project root when inside it
  std::string content;  // UTF-8 text
};

struct HookRequest {
  std::string event;
  json::object input;   // the event JSON from Claude Code
  std::string project;  // "" = the default project
  std::vector<HookFile> files;
};

// The events `devstream hook` accepts, as Claude Code spells them.
const std::vector<std::string_view>& HookEvents();

// Parses the event JSON and gathers the local facts (project, file
// contents). InvalidArgument for an unknown event or malformed JSON.
Result<HookRequest> PrepareHookRequest(std::string_view event, std::string_view input_text);

json::object ToJson(const HookRequest& request);
Result<HookRequest> HookRequestFromJson(const json::value& body);

// Paths never stored: VCS and dependency directories, build output, lock
// files, and files that look like secrets.
bool IsIgnoredPath(std::string_view path);

struct HookSettings {
  int prompt_budget_tokens = 1500;
  int session_budget_tokens = 2000;
  int file_budget_tokens = 800;
  size_t chunk_bytes = 12 * 1024;
  // Larger files (480 KB) are not stored: generated or vendored, and the
  // relayed request must stay within the server's 1 MiB body limit.
  size_t max_chunks = 40;
};

struct HookServices {
  tasks::TaskService& tasks;
  memory::MemoryService& memory;
  engine::SessionService& sessions;
  Database& db;
};

class HookHandler {
 public:
  HookHandler(HookServices services, HookSettings settings = {});
  // The JSON to print on stdout, or nullopt for no output.
  Result<std::optional<json::object>> Handle(const HookRequest& request);

 private:
  Result<std::optional<json::object>> SessionStart(const HookRequest& r);
  Result<std::optional<json::object>> UserPromptSubmit(const HookRequest& r);
  Result<std::optional<json::object>> PreToolUse(const HookRequest& r);
  Status PostToolUse(const HookRequest& r);
  Status StoreError(const HookRequest& r, const std::string& command, const std::string& output);
  Status StoreFile(const HookRequest& r, const HookFile& file);
  // Our session for the event's session_id (started on first sight).
  Result<std::optional<engine::Session>> SessionFor(const HookRequest& r);

  HookServices s_;
  HookSettings settings_;
};

}  // namespace ds::hooks
