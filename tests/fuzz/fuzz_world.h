// The world the fuzz targets run against: the services `devstream serve`
// wires (app::OpenServices) on a temporary SQLite database, the real Router
// with every route (REST, memory, engine, health, metrics, hooks, MCP) behind
// the real RequestGuard, the MCP server with the DevStream tools and the hook
// handler. Built on first use with a few fixtures (project, plan, phase, two
// tasks, a memory, a job, a session) whose ids inputs name as $PROJECT,
// $PLAN, $PHASE, $TASK, $TASK2, $MEMORY, $JOB, $SESSION and API keys as
// $KEY_ADMIN, $KEY_WRITE, $KEY_READ, $KEY_BOUND (bound to the project); rebuilt from an
// empty database every few thousand inputs so per-input work stays small.
// Logging is off. Also the response invariants the HTTP targets check.
// Not thread-safe: fuzz targets run one input at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/http.h"
#include "api/router.h"
#include "hooks/hook_handler.h"
#include "mcp/protocol.h"

namespace ds::fuzz {

struct Fixtures {
  std::string project, project_name, plan, phase, task, task2, memory, job, session;
};

class World {
 public:
  // The process's world (built, or rebuilt after kResetEvery uses).
  static World& Get();
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  api::Router& router();
  const mcp::McpServer& mcp() const;
  hooks::HookHandler& hooks();
  const Fixtures& fixtures() const;
  // `text` with every $NAME placeholder replaced by its fixture id, and
  // each $NEW_PLAN, $NEW_PHASE, $NEW_TASK, $NEW_MEMORY by the id of a
  // resource created for it (for inputs that delete what they name).
  std::string Substitute(std::string text);
  // What HttpServer does with a parsed request: request id, peer address,
  // target parsing (400 problem on failure), then Router::Dispatch.
  api::Response Serve(api::Request& req);

 private:
  World();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Prints `what` and aborts (libFuzzer reports it as a crash).
[[noreturn]] void Fail(std::string_view what);

// Invariants of any response the server would write for `req`: a status in
// 200..599, bodiless 204/304, JSON bodies that parse, problem+json (with a
// matching "status") for 4xx/5xx outside /mcp, JSON-RPC errors on /mcp, and
// header names/values the server can put on the wire. With DS_FUZZ_VERBOSE
// set, prints each request and the start of its response to stderr.
void CheckResponse(const api::Request& req, const api::Response& res);

// The input as a string, and its first line split from the rest.
std::string AsString(const uint8_t* data, size_t size);
std::pair<std::string, std::string> SplitFirstLine(const std::string& input);
// A stable hash of `s` (FNV-1a), to pick a table entry from input bytes.
uint32_t Fnv1a(std::string_view s);

}  // namespace ds::fuzz
