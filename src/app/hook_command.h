// `devstream hook <Event>`: Claude Code's hook command. Reads the event JSON
// on stdin and prints the hook's answer on stdout (or nothing). It relays to
// a running server's POST /api/v1/hooks/{event} (--url, DEVSTREAM_URL, or the
// default address when no database was named), falling back to opening the
// database itself. It never breaks the assistant: every failure is logged to
// the hook log (DEVSTREAM_HOOK_LOG, else $XDG_STATE_HOME/devstream/hooks.log,
// else ~/.local/state/devstream/hooks.log) and the command exits 0 without
// output; a hard time budget (DEVSTREAM_HOOK_TIMEOUT_MS, default 4000) ends
// it the same way.
#pragma once

#include <string>

namespace ds::app {

struct HookOptions {
  std::string event;
  std::string db_path;
  std::string url;
};

int RunHook(const HookOptions& options);

// Where hook failures are logged.
std::string HookLogPath();
// Appends one line to the hook log (rotated past 1 MiB).
void LogHookFailure(const std::string& event, const std::string& message);

}  // namespace ds::app
