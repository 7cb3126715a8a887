// The MCP Streamable HTTP transport, mounted at /mcp on the REST server.
//   POST /mcp    one JSON-RPC message or a batch. Requests are answered with
//                a JSON body, or with an SSE stream (event "message") when a
//                request carries params._meta.progressToken (progress
//                notifications, then the result) or the client accepts only
//                text/event-stream. Notifications/responses alone: 202.
//   DELETE /mcp  ends the session named by Mcp-Session-Id.
//   GET /mcp     405: the server never starts requests of its own.
// initialize creates a session (Mcp-Session-Id in the answer, for protocol
// versions that have sessions); a request naming an unknown or expired
// session gets 404. A request without Mcp-Session-Id is served statelessly,
// at the version its MCP-Protocol-Version header names (2025-03-26 when
// absent). An MCP-Protocol-Version header must name a supported version. Requests with an Origin
// header are refused (403) unless the origin is loopback or listed in `allowed_origins` (DNS
// rebinding). With API keys on, tools/call checks the caller's key per tool
// (write tools need the write scope; a project-bound key is confined to its
// project), and a session belongs to the key that created it (another key
// gets 404). Thread-safety: handlers may run concurrently; the session table is locked, and
// requests of one session are serialised.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/access.h"
#include "api/router.h"
#include "mcp/protocol.h"

namespace ds::mcp {

struct HttpTransportOptions {
  std::vector<std::string> allowed_origins;  // exact origins, e.g. "https://app.example"
  std::chrono::seconds session_idle{3600};
  size_t max_sessions = 10000;
  api::AccessControl* access = nullptr;  // null: auth off
};

class HttpTransport {
 public:
  HttpTransport(const McpServer& server, HttpTransportOptions options);
  void Register(api::Router& router);

  size_t session_count() const;

 private:
  struct Session {
    SessionState state;
    std::string key_id;  // the API key that created it ("" with auth off)
    std::chrono::steady_clock::time_point last_used;
    std::mutex mu;  // one request of a session at a time
  };
  api::Response Post(api::Request& req);
  api::Response Delete(api::Request& req);
  bool OriginAllowed(const std::string& origin) const;
  std::shared_ptr<Session> Find(const std::string& id);
  std::string Create(std::shared_ptr<Session> session);

  const McpServer& server_;
  HttpTransportOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
};

}  // namespace ds::mcp
