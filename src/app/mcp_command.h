// `devstream mcp`: the MCP server on stdio. With --url or DEVSTREAM_URL — or,
// when no database was named, a DevStream server answering at the default
// address — it relays to that server's /mcp, so every assistant session
// shares one process and one index; otherwise it opens the database itself.
// The default project of its tools: --project, else DEVSTREAM_PROJECT, else
// the name of the git root above the working directory.
#pragma once

#include <string>

#include "mcp/protocol.h"

namespace ds::app {

struct McpOptions {
  std::string db_path;  // empty: the default (then a running server is preferred)
  std::string url;      // empty: DEVSTREAM_URL
  std::string project;
};

int RunMcp(const McpOptions& options);

// The instructions sent to MCP clients at initialize.
const std::string& McpInstructions();

}  // namespace ds::app
