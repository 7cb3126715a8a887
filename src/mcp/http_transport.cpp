#include "mcp/http_transport.h"

#include <algorithm>
#include <cstdlib>

#include "core/encoding.h"
#include "core/id.h"
#include "core/signing.h"

namespace ds::mcp {
namespace {

api::Response JsonRpcHttpError(int http_status, int code, const std::string& message) {
  // Messages may echo header bytes; the JSON body must be UTF-8.
  api::Response r =
      api::JsonResponse(http_status, ErrorResponse(nullptr, code, ToValidUtf8(message)));
  return r;
}

bool ContainsToken(const std::string* header, std::string_view token) {
  return header && header->find(token) != std::string::npos;
}

// A request (not a notification) in the message or batch carries a progress token.
bool WantsProgress(const json::value& message) {
  auto one = [](const json::value& m) {
    if (!m.is_object()) return false;
    const auto* params = m.as_object().if_contains("params");
    if (!params || !params->is_object()) return false;
    const auto* meta = params->as_object().if_contains("_meta");
    return meta && meta->is_object() && meta->as_object().contains("progressToken") &&
           m.as_object().contains("id");
  };
  if (message.is_array()) {
    return std::any_of(message.as_array().begin(), message.as_array().end(), one);
  }
  return one(message);
}

std::string SseEvent(const json::value& v) {
  return "event: message\ndata: " + ToJsonString(v) + "\n\n";
}

// notifications/progress for each request carrying a token: the call is
// done (1 of 1). Calls run to completion before the answer is written, so
// the stream holds that notification and then the result.
void AppendProgress(const json::value& message, double progress, std::string* body) {
  auto one = [&](const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("id")) return;
    const auto* params = m.as_object().if_contains("params");
    if (!params || !params->is_object()) return;
    const auto* meta = params->as_object().if_contains("_meta");
    if (!meta || !meta->is_object()) return;
    const auto* token = meta->as_object().if_contains("progressToken");
    if (!token || !(token->is_string() || token->is_int64() || token->is_uint64())) return;
    *body += SseEvent(json::object{
        {"jsonrpc", "2.0"},
        {"method", "notifications/progress"},
        {"params", json::object{{"progressToken", *token}, {"progress", progress}, {"total", 1}}}});
  };
  if (message.is_array()) {
    for (const auto& m : message.as_array()) one(m);
  } else {
    one(message);
  }
}

// The API key a request came with ("" with auth off): its MCP sessions' owner.
std::string KeyIdOf(const api::Request& req) {
  return req.caller ? req.caller->key_id : "";
}

bool IsLoopbackOrigin(const std::string& origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.rfind(scheme, 0) != 0) continue;
    std::string_view rest = std::string_view(origin).substr(scheme.size());
    for (std::string_view host : {"localhost", "127.0.0.1", "[::1]"}) {
      if (rest.rfind(host, 0) == 0) {
        std::string_view tail = rest.substr(host.size());
        if (tail.empty() || tail[0] == ':') {
          return tail.find('/') == std::string_view::npos;
        }
      }
    }
  }
  return false;
}

}  // namespace

HttpTransport::HttpTransport(const McpServer& server, HttpTransportOptions options)
    : server_(server), options_(std::move(options)) {}

void HttpTransport::Register(api::Router& router) {
  // Reading is enough to talk MCP; tools that write check the write scope per call.
  router.Add(
      "POST", "/mcp", [this](api::Request& req) { return Post(req); }, api::Access::kRead);
  router.Add(
      "DELETE", "/mcp", [this](api::Request& req) { return Delete(req); }, api::Access::kRead);
}

size_t HttpTransport::session_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

bool HttpTransport::OriginAllowed(const std::string& origin) const {
  if (IsLoopbackOrigin(origin)) return true;
  return std::find(options_.allowed_origins.begin(), options_.allowed_origins.end(), origin) !=
         options_.allowed_origins.end();
}

std::shared_ptr<HttpTransport::Session> HttpTransport::Find(const std::string& id) {
  if (!Verify(id)) return nullptr;  // not one we issued: no lookup needed
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  auto now = std::chrono::steady_clock::now();
  if (now - it->second->last_used > options_.session_idle) {
    sessions_.erase(it);
    return nullptr;
  }
  it->second->last_used = now;
  return it->second;
}

std::string HttpTransport::Create(std::shared_ptr<Session> session) {
  std::string id = Sign(RandomHex(16));
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = now - it->second->last_used > options_.session_idle ? sessions_.erase(it) : std::next(it);
  }
  if (sessions_.size() >= options_.max_sessions) {
    auto oldest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second->last_used < b.second->last_used; });
    sessions_.erase(oldest);
  }
  session->last_used = now;
  sessions_.emplace(id, std::move(session));
  return id;
}

api::Response HttpTransport::Post(api::Request& req) {
  if (const std::string* origin = req.Header("origin"); origin && !OriginAllowed(*origin)) {
    return JsonRpcHttpError(
        403, -32600,
        "Forbidden: Origin " + *origin +
            " is not allowed (loopback origins and DEVSTREAM_MCP_ALLOWED_ORIGINS)");
  }
  const std::string* accept = req.Header("accept");
  bool accepts_json = !accept || ContainsToken(accept, "application/json") ||
                      ContainsToken(accept, "*/*") || ContainsToken(accept, "application/*");
  bool accepts_sse = ContainsToken(accept, "text/event-stream");
  if (!accepts_json && !accepts_sse) {
    return JsonRpcHttpError(406, -32600,
                            "Not Acceptable: accept application/json and/or text/event-stream");
  }
  if (const std::string* v = req.Header("mcp-protocol-version")) {
    const auto& supported = SupportedProtocolVersions();
    if (std::find(supported.begin(), supported.end(), *v) == supported.end()) {
      return JsonRpcHttpError(400, -32600, "Bad Request: unsupported MCP-Protocol-Version " + *v);
    }
  }
  auto parsed = ParseJson(req.body, 128);
  if (!parsed.ok()) {
    return JsonRpcHttpError(400, -32700, "Parse error: " + parsed.status().message());
  }
  const json::value& message = *parsed;
  bool initialize = McpServer::IsInitialize(message);
  std::shared_ptr<Session> session;
  const std::string* sid = req.Header("mcp-session-id");
  std::string new_session_id;
  if (initialize) {
    session = std::make_shared<Session>();
    session->key_id = KeyIdOf(req);
  } else if (sid) {
    session = Find(*sid);
    if (!session || session->key_id != KeyIdOf(req)) {
      return JsonRpcHttpError(404, -32001,
                              "Session not found (expired or ended): initialize a new one");
    }
  } else {
    // A client that negotiated a version without sessions, or one that skips
    // initialize: served statelessly.
    session = std::make_shared<Session>();
    session->state.initialized = true;
    // Without a session the version comes from the header, else the
    // transport's first revision (MCP: assume 2025-03-26).
    const std::string* v = req.Header("mcp-protocol-version");
    session->state.protocol_version = v ? *v : "2025-03-26";
  }
  std::optional<json::value> reply;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    CallScope scope;
    if (const std::string* p = req.Header("x-devstream-project"); p && !p->empty()) {
      scope.default_project = *p;
    }
    if (req.caller && options_.access) {
      scope.authorize = [&](const Tool& tool, const json::object& args) {
        return options_.access->Confine(*req.caller, !tool.read_only, args);
      };
    }
    reply = server_.Handle(message, session->state, scope);
    if (initialize && reply && reply->is_object() && reply->as_object().contains("result") &&
        VersionHasSessions(session->state.protocol_version)) {
      new_session_id = Create(session);
    }
  }
  if (!reply) {
    api::Response r;
    r.status = 202;
    r.content_type = "application/json";
    return r;
  }
  api::Response r;
  bool sse = (accepts_sse && !accepts_json) || (accepts_sse && WantsProgress(message));
  if (sse) {
    r.status = 200;
    r.content_type = "text/event-stream";
    AppendProgress(message, 1, &r.body);
    r.body += SseEvent(*reply);
    r.headers.emplace_back("Cache-Control", "no-cache");
  } else {
    r = api::JsonResponse(200, *reply);
  }
  if (!new_session_id.empty()) r.headers.emplace_back("Mcp-Session-Id", new_session_id);
  return r;
}

api::Response HttpTransport::Delete(api::Request& req) {
  if (const std::string* origin = req.Header("origin"); origin && !OriginAllowed(*origin)) {
    return JsonRpcHttpError(403, -32600, "Forbidden: Origin " + *origin + " is not allowed");
  }
  const std::string* sid = req.Header("mcp-session-id");
  if (!sid) return JsonRpcHttpError(400, -32600, "Bad Request: Mcp-Session-Id header required");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(*sid);
  if (it == sessions_.end() || it->second->key_id != KeyIdOf(req)) {
    return JsonRpcHttpError(404, -32001, "Session not found");
  }
  sessions_.erase(it);
  api::Response r;
  r.status = 204;
  return r;
}

}  // namespace ds::mcp
