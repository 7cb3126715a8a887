// The MCP stdio transport: newline-delimited JSON-RPC on stdin/stdout.
// stdout carries protocol messages only (one per line); diagnostics go to
// stderr. Messages are handled in order; a line that is not JSON gets a
// -32700 answer and the loop goes on; end of input ends the loop.
//
// StdioRelay is the same loop forwarding every message to a running
// server's POST /mcp (so many assistant sessions share one server, one
// index): it keeps the Mcp-Session-Id and protocol version of the session it
// opened, unwraps SSE answers, and when the server cannot be reached answers
// each request with a JSON-RPC error saying so.
// Thread-safety: one loop per stream pair.
#pragma once

#include <istream>
#include <ostream>
#include <string>

#include "mcp/protocol.h"

namespace ds::mcp {

// Lines longer than this are answered with an error and skipped.
inline constexpr size_t kMaxStdioMessageBytes = 16 << 20;

void RunStdio(const McpServer& server, std::istream& in, std::ostream& out,
              const std::string& default_project);

// `base_url` like "http://127.0.0.1:8000" (no trailing /mcp); `api_key`
// (when not empty) goes with every request as Authorization: Bearer.
void RunStdioRelay(const std::string& base_url, std::istream& in, std::ostream& out,
                   const std::string& default_project, const std::string& api_key = "");

// True when a DevStream server answers GET <base_url>/version within
// `timeout_ms`.
bool ServerReachable(const std::string& base_url, int timeout_ms);

}  // namespace ds::mcp
