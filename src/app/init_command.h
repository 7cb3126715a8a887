// `devstream init [--project-dir DIR]`: connects a project to DevStream for
// Claude Code. Merges DevStream's hooks into DIR/.claude/settings.json and
// its MCP server into DIR/.mcp.json, keeping every other entry; running it
// again changes nothing. A file that changes is first copied to
// "<file>.bak"; a file that is not valid JSON is left alone (error, exit 1).
// The commands written name no database, so they use the per-user default
// and no database lands in the repository.
#pragma once

#include <string>

#include "core/json.h"
#include "core/status.h"

namespace ds::app {

struct InitResult {
  bool settings_changed = false, mcp_changed = false;
  std::string settings_path, mcp_path;
};

// `command` is how the hooks and MCP server start devstream ("devstream" or
// an absolute path).
Result<InitResult> InitProject(const std::string& project_dir, const std::string& command);

// The merges themselves (pure; exposed for tests).
json::object MergeHookSettings(json::object settings, const std::string& command);
json::object MergeMcpConfig(json::object config, const std::string& command);

// "devstream" when that name on PATH is this binary, else this binary's path.
std::string DevStreamCommand();

}  // namespace ds::app
