// McpServer speaks the Model Context Protocol's JSON-RPC 2.0 layer for one
// tool registry: the lifecycle (initialize with version negotiation,
// notifications/initialized, ping), tools/list with cursor pagination and
// tools/call. Transports (stdio, Streamable HTTP) feed it messages and carry
// its replies; they own the per-connection SessionState.
//
// Errors follow JSON-RPC: -32700 parse error, -32600 invalid request, -32601
// unknown method, -32602 invalid params (including an unknown tool name),
// -32603 internal. A tool that fails — bad arguments included — is not a
// protocol error: it answers a result with isError: true and a message that
// tells the model how to fix the call (MCP 2025-11-25, "tool execution
// errors"). Notifications and responses sent to us get no reply;
// notifications/cancelled is accepted and ignored (calls run to completion).
// Thread-safety: Handle may be called concurrently for different sessions;
// a SessionState is used by one call at a time.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ds::mcp {

// Newest first; initialize answers with the client's version when listed
// here, else with the newest.
const std::vector<std::string>& SupportedProtocolVersions();
// Versions whose Streamable HTTP transport uses Mcp-Session-Id.
bool VersionHasSessions(std::string_view version);

struct SessionState {
  std::string protocol_version;  // empty until initialize
  bool initialized = false;      // notifications/initialized seen
  std::string client_name, client_version;
};

// What a tool handler knows about its caller.
struct CallContext {
  const SessionState& session;
  std::string default_project;  // empty: the service default
  std::string agent;            // the client's name unless the call names one
};

struct Tool;

// What a transport knows about one request: the project calls act in unless
// they name one, and a check run before each tool call (API-key scopes and
// project confinement; a failure becomes the call's isError result).
struct CallScope {
  std::string default_project;  // empty: the service default
  std::function<Status(const Tool& tool, const json::object& arguments)> authorize;
};

struct ToolResult {
  std::string text;         // concise, for the model
  json::object structured;  // matches the tool's outputSchema
};

struct Tool {
  std::string name, title, description;
  json::object input_schema, output_schema;
  bool read_only = false;
  // Errors become isError results carrying the Status message.
  std::function<Result<ToolResult>(const json::object& arguments, const CallContext& ctx)> run;
};

class ToolRegistry {
 public:
  void Add(Tool tool);
  const Tool* Find(std::string_view name) const;
  const std::vector<Tool>& tools() const { return tools_; }

 private:
  std::vector<Tool> tools_;
};

struct ServerInfo {
  std::string name = "devstream";
  std::string version;
  std::string instructions;
  size_t page_size = 50;  // tools per tools/list page
};

class McpServer {
 public:
  McpServer(const ToolRegistry& tools, ServerInfo info);

  // One parsed message (or a batch array); the reply, or nullopt when none is
  // due (notifications, responses, a batch of only those).
  std::optional<json::value> Handle(const json::value& message, SessionState& session,
                                    const CallScope& scope = {}) const;
  // The same for raw text; a parse error yields the -32700 error response.
  std::optional<std::string> HandleText(std::string_view text, SessionState& session,
                                        const CallScope& scope = {}) const;

  // True when `message` is a JSON-RPC request with method "initialize".
  static bool IsInitialize(const json::value& message);

 private:
  json::value HandleRequest(const json::value& id, const std::string& method,
                            const json::value* params, SessionState& session,
                            const CallScope& scope) const;
  json::value Initialize(const json::value& id, const json::value* params,
                         SessionState& session) const;
  json::value ListTools(const json::value& id, const json::value* params,
                        const SessionState& session) const;
  json::value CallTool(const json::value& id, const json::value* params,
                       const SessionState& session, const CallScope& scope) const;
  std::optional<json::value> HandleOne(const json::value& message, SessionState& session,
                                       const CallScope& scope) const;

  const ToolRegistry& tools_;
  ServerInfo info_;
};

// JSON-RPC error response.
json::value ErrorResponse(const json::value& id, int code, std::string_view message,
                          const json::value& data = nullptr);

}  // namespace ds::mcp
