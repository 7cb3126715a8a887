#include "mcp/protocol.h"

#include <algorithm>
#include <charconv>
#include <exception>

#include "core/encoding.h"
#include "core/signing.h"

namespace ds::mcp {
namespace {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;

json::value Success(const json::value& id, json::value result) {
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

bool ValidId(const json::value& id) {
  return id.is_string() || id.is_int64() || id.is_uint64();
}

// Structured output exists from 2025-06-18 on.
bool HasStructuredOutput(std::string_view version) {
  return version.empty() || version >= "2025-06-18";
}

std::string ToolErrorText(const Status& st) {
  std::string text = "Error: " + st.message();
  switch (st.code()) {
    case StatusCode::kNotFound:
      text +=
          " (use devstream_list_plans / devstream_list_tasks / devstream_search_memory to "
          "find valid ids)";
      break;
    case StatusCode::kInvalidArgument:
    case StatusCode::kMalformed:
      text += " (fix the arguments to match the tool's inputSchema and call again)";
      break;
    case StatusCode::kUnavailable:
      text += " (temporary; retry the call)";
      break;
    default:
      break;
  }
  return text;
}

}  // namespace

const std::vector<std::string>& SupportedProtocolVersions() {
  static const std::vector<std::string> v = {"2025-11-25", "2025-06-18", "2025-03-26",
                                             "2024-11-05"};
  return v;
}

bool VersionHasSessions(std::string_view version) {
  return version >= "2025-03-26";
}

void ToolRegistry::Add(Tool tool) {
  tools_.push_back(std::move(tool));
}

const Tool* ToolRegistry::Find(std::string_view name) const {
  for (const auto& t : tools_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

json::value ErrorResponse(const json::value& id, int code, std::string_view message,
                          const json::value& data) {
  json::object err{{"code", code}, {"message", message}};
  if (!data.is_null()) err["data"] = data;
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

McpServer::McpServer(const ToolRegistry& tools, ServerInfo info)
    : tools_(tools), info_(std::move(info)) {}

bool McpServer::IsInitialize(const json::value& message) {
  if (!message.is_object()) return false;
  const auto* m = message.as_object().if_contains("method");
  return m && m->is_string() && m->as_string() == "initialize" &&
         message.as_object().contains("id");
}

std::optional<std::string> McpServer::HandleText(std::string_view text, SessionState& session,
                                                 const CallScope& scope) const {
  auto parsed = ParseJson(text, 128);
  if (!parsed.ok()) {
    return ToJsonString(
        ErrorResponse(nullptr, kParseError, "Parse error: " + parsed.status().message()));
  }
  auto reply = Handle(*parsed, session, scope);
  if (!reply) return std::nullopt;
  return ToJsonString(*reply);
}

std::optional<json::value> McpServer::Handle(const json::value& message, SessionState& session,
                                             const CallScope& scope) const {
  if (message.is_array()) {
    const auto& batch = message.as_array();
    if (batch.empty())
      return ErrorResponse(nullptr, kInvalidRequest, "Invalid Request: empty batch");
    json::array replies;
    for (const auto& m : batch) {
      if (auto r = HandleOne(m, session, scope)) replies.push_back(std::move(*r));
    }
    if (replies.empty()) return std::nullopt;
    return json::value(std::move(replies));
  }
  return HandleOne(message, session, scope);
}

std::optional<json::value> McpServer::HandleOne(const json::value& message, SessionState& session,
                                                const CallScope& scope) const {
  if (!message.is_object()) {
    return ErrorResponse(nullptr, kInvalidRequest, "Invalid Request: a message must be an object");
  }
  const json::object& m = message.as_object();
  const json::value* id = m.if_contains("id");
  json::value reply_id = id && ValidId(*id) ? *id : json::value(nullptr);
  const json::value* version = m.if_contains("jsonrpc");
  if (!version || !version->is_string() || version->as_string() != "2.0") {
    return ErrorResponse(reply_id, kInvalidRequest, "Invalid Request: jsonrpc must be \"2.0\"");
  }
  const json::value* method = m.if_contains("method");
  if (!method) {
    // A response to a request we never send (we make no server-to-client
    // requests): nothing to answer.
    if (id && (m.contains("result") || m.contains("error"))) return std::nullopt;
    return ErrorResponse(reply_id, kInvalidRequest, "Invalid Request: method is missing");
  }
  if (!method->is_string()) {
    return ErrorResponse(reply_id, kInvalidRequest, "Invalid Request: method must be a string");
  }
  const json::value* params = m.if_contains("params");
  if (params && !params->is_object() && !params->is_array()) {
    return ErrorResponse(reply_id, kInvalidRequest,
                         "Invalid Request: params must be an object or an array");
  }
  std::string name(method->as_string());
  if (!id) {  // a notification
    if (name == "notifications/initialized") session.initialized = true;
    return std::nullopt;
  }
  if (!ValidId(*id)) {
    return ErrorResponse(nullptr, kInvalidRequest,
                         "Invalid Request: id must be a string or an integer");
  }
  try {
    return HandleRequest(*id, name, params, session, scope);
  } catch (const std::exception& e) {
    return ErrorResponse(*id, kInternalError, std::string("Internal error: ") + e.what());
  }
}

json::value McpServer::HandleRequest(const json::value& id, const std::string& method,
                                     const json::value* params, SessionState& session,
                                     const CallScope& scope) const {
  if (method == "initialize") return Initialize(id, params, session);
  if (method == "ping") return Success(id, json::object{});
  if (method == "tools/list") return ListTools(id, params, session);
  if (method == "tools/call") return CallTool(id, params, session, scope);
  return ErrorResponse(id, kMethodNotFound, "Method not found: " + method,
                       json::object{{"method", method}});
}

json::value McpServer::Initialize(const json::value& id, const json::value* params,
                                  SessionState& session) const {
  if (!params || !params->is_object()) {
    return ErrorResponse(id, kInvalidParams, "Invalid params: initialize needs an object");
  }
  const json::object& p = params->as_object();
  const json::value* requested = p.if_contains("protocolVersion");
  if (!requested || !requested->is_string()) {
    return ErrorResponse(id, kInvalidParams,
                         "Invalid params: protocolVersion (a string) is required");
  }
  const auto& supported = SupportedProtocolVersions();
  std::string version = supported.front();
  if (std::find(supported.begin(), supported.end(), std::string(requested->as_string())) !=
      supported.end()) {
    version = std::string(requested->as_string());
  }
  session.protocol_version = version;
  if (const json::value* info = p.if_contains("clientInfo"); info && info->is_object()) {
    const auto& ci = info->as_object();
    if (const auto* n = ci.if_contains("name"); n && n->is_string()) {
      session.client_name = std::string(n->as_string()).substr(0, 200);
    }
    if (const auto* v = ci.if_contains("version"); v && v->is_string()) {
      session.client_version = std::string(v->as_string()).substr(0, 100);
    }
  }
  json::object result{
      {"protocolVersion", version},
      {"capabilities", json::object{{"tools", json::object{{"listChanged", false}}}}},
      {"serverInfo",
       json::object{{"name", info_.name}, {"title", "DevStream"}, {"version", info_.version}}}};
  if (!info_.instructions.empty()) result["instructions"] = info_.instructions;
  return Success(id, std::move(result));
}

json::value McpServer::ListTools(const json::value& id, const json::value* params,
                                 const SessionState& session) const {
  size_t offset = 0;
  if (params && params->is_object()) {
    if (const json::value* c = params->as_object().if_contains("cursor"); c && !c->is_null()) {
      std::optional<std::string> raw;
      if (c->is_string()) raw = DecodeCursor(std::string(c->as_string()));
      size_t parsed = 0;
      bool ok = raw && raw->rfind("tools:", 0) == 0;
      if (ok) {
        auto [ptr, ec] = std::from_chars(raw->data() + 6, raw->data() + raw->size(), parsed);
        ok =
            ec == std::errc() && ptr == raw->data() + raw->size() && parsed < tools_.tools().size();
      }
      if (!ok) return ErrorResponse(id, kInvalidParams, "Invalid params: unknown cursor");
      offset = parsed;
    }
  }
  const auto& all = tools_.tools();
  size_t end = std::min(all.size(), offset + std::max<size_t>(1, info_.page_size));
  bool structured = HasStructuredOutput(session.protocol_version);
  json::array list;
  for (size_t i = offset; i < end; ++i) {
    const Tool& t = all[i];
    json::object entry{{"name", t.name},
                       {"title", t.title},
                       {"description", t.description},
                       {"inputSchema", t.input_schema},
                       {"annotations", json::object{{"title", t.title},
                                                    {"readOnlyHint", t.read_only},
                                                    {"openWorldHint", false}}}};
    if (structured) entry["outputSchema"] = t.output_schema;
    list.push_back(std::move(entry));
  }
  json::object result{{"tools", std::move(list)}};
  if (end < all.size()) result["nextCursor"] = EncodeCursor("tools:" + std::to_string(end));
  return Success(id, std::move(result));
}

json::value McpServer::CallTool(const json::value& id, const json::value* params,
                                const SessionState& session, const CallScope& scope) const {
  if (!params || !params->is_object()) {
    return ErrorResponse(id, kInvalidParams, "Invalid params: tools/call needs an object");
  }
  const json::object& p = params->as_object();
  const json::value* name = p.if_contains("name");
  if (!name || !name->is_string()) {
    return ErrorResponse(id, kInvalidParams, "Invalid params: name (a string) is required");
  }
  const Tool* tool = tools_.Find(name->as_string());
  if (!tool) {
    std::string names;
    for (const auto& t : tools_.tools()) names += (names.empty() ? "" : ", ") + t.name;
    return ErrorResponse(
        id, kInvalidParams,
        "Unknown tool: " + std::string(name->as_string()) + " (tools: " + names + ")");
  }
  json::object arguments;
  if (const json::value* a = p.if_contains("arguments"); a && !a->is_null()) {
    if (!a->is_object()) {
      return ErrorResponse(id, kInvalidParams, "Invalid params: arguments must be an object");
    }
    arguments = a->as_object();
  }
  CallContext ctx{session, scope.default_project,
                  session.client_name.empty() ? std::string("mcp") : session.client_name};
  Result<ToolResult> out = Status::Internal("tool did not run");
  try {
    Status allowed = scope.authorize ? scope.authorize(*tool, arguments) : Status::Ok();
    out = allowed.ok() ? tool->run(arguments, ctx) : Result<ToolResult>(allowed);
  } catch (const std::exception& e) {
    out = Status::Internal(std::string("tool ") + tool->name + " failed: " + e.what());
  }
  json::object result;
  if (!out.ok()) {
    result["content"] =
        json::array{json::object{{"type", "text"}, {"text", ToolErrorText(out.status())}}};
    result["isError"] = true;
    return Success(id, std::move(result));
  }
  json::array content{json::object{{"type", "text"}, {"text", out->text}}};
  if (HasStructuredOutput(session.protocol_version)) {
    result["structuredContent"] = std::move(out->structured);
  } else {
    // Older clients have no structuredContent: the data goes as JSON text.
    content.push_back(json::object{{"type", "text"}, {"text", ToJsonString(out->structured)}});
  }
  result["content"] = std::move(content);
  result["isError"] = false;
  return Success(id, std::move(result));
}

}  // namespace ds::mcp
