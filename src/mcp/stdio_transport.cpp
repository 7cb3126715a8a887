#include "mcp/stdio_transport.h"

#include <iostream>

#include "core/http_client.h"

namespace ds::mcp {
namespace {

// Reads one line (without the newline) up to `limit` bytes; a longer line is
// consumed and reported as too long. False at end of input.
bool ReadLine(std::istream& in, std::string* line, bool* too_long) {
  line->clear();
  *too_long = false;
  char ch;
  bool any = false;
  while (in.get(ch)) {
    any = true;
    if (ch == '\n') return true;
    if (line->size() < kMaxStdioMessageBytes) {
      line->push_back(ch);
    } else {
      *too_long = true;
    }
  }
  return any;
}

bool Blank(const std::string& s) {
  return s.find_first_not_of(" \t\r") == std::string::npos;
}

void WriteMessage(std::ostream& out, const std::string& text) {
  out << text << '\n';
  out.flush();
}

struct RelayState {
  std::string session_id, protocol_version;
};

// POSTs one message to the server's /mcp with the session's headers,
// remembering the session id the server hands out.
HttpReply Post(const std::string& url, const std::string& body, RelayState* state,
               const std::string& default_project, const std::string& api_key) {
  HttpCall call;
  call.method = "POST";
  call.url = url;
  call.body = body;
  call.headers = {"Content-Type: application/json", "Accept: application/json, text/event-stream"};
  if (!state->session_id.empty()) call.headers.push_back("Mcp-Session-Id: " + state->session_id);
  if (!state->protocol_version.empty()) {
    call.headers.push_back("MCP-Protocol-Version: " + state->protocol_version);
  }
  if (!default_project.empty()) call.headers.push_back("X-DevStream-Project: " + default_project);
  if (!api_key.empty()) call.headers.push_back("Authorization: Bearer " + api_key);
  call.connect_timeout_ms = 2000;
  call.timeout_ms = 300000;
  HttpReply reply = HttpRequest(call);
  if (auto it = reply.headers.find("mcp-session-id"); it != reply.headers.end()) {
    state->session_id = it->second;
  }
  return reply;
}

// The "data:" payloads of an SSE body, one message each.
std::vector<std::string> SseMessages(const std::string& body) {
  std::vector<std::string> out;
  std::string data;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (!data.empty()) out.push_back(data);
      data.clear();
    } else if (line.rfind("data:", 0) == 0) {
      std::string d = line.substr(5);
      if (!d.empty() && d[0] == ' ') d.erase(0, 1);
      data += (data.empty() ? "" : "\n") + d;
    }
    pos = end + 1;
  }
  if (!data.empty()) out.push_back(data);
  return out;
}

// The id of each request in a message (for error answers when relaying fails).
std::vector<json::value> RequestIds(const json::value& message) {
  std::vector<json::value> ids;
  auto one = [&](const json::value& m) {
    if (m.is_object() && m.as_object().contains("method")) {
      if (const auto* id = m.as_object().if_contains("id")) ids.push_back(*id);
    }
  };
  if (message.is_array()) {
    for (const auto& m : message.as_array()) one(m);
  } else {
    one(message);
  }
  return ids;
}

}  // namespace

void RunStdio(const McpServer& server, std::istream& in, std::ostream& out,
              const std::string& default_project) {
  SessionState session;
  std::string line;
  bool too_long = false;
  while (ReadLine(in, &line, &too_long)) {
    if (too_long) {
      WriteMessage(out, ToJsonString(ErrorResponse(nullptr, -32600,
                                                   "Invalid Request: message larger than 16 MiB")));
      continue;
    }
    if (Blank(line)) continue;
    if (auto reply = server.HandleText(line, session, CallScope{default_project, {}}))
      WriteMessage(out, *reply);
  }
}

void RunStdioRelay(const std::string& base_url, std::istream& in, std::ostream& out,
                   const std::string& default_project, const std::string& api_key) {
  RelayState state;
  std::string initialize_line;  // replayed when the server loses our session
  std::string url = base_url + "/mcp";
  std::string line;
  bool too_long = false;
  while (ReadLine(in, &line, &too_long)) {
    if (too_long) {
      WriteMessage(out, ToJsonString(ErrorResponse(nullptr, -32600,
                                                   "Invalid Request: message larger than 16 MiB")));
      continue;
    }
    if (Blank(line)) continue;
    auto parsed = ParseJson(line, 128);
    if (!parsed.ok()) {
      WriteMessage(out, ToJsonString(ErrorResponse(nullptr, -32700,
                                                   "Parse error: " + parsed.status().message())));
      continue;
    }
    if (McpServer::IsInitialize(*parsed)) {
      state = RelayState{};
      initialize_line = line;
    }
    HttpReply a = Post(url, line, &state, default_project, api_key);
    if (a.status == 404 && !initialize_line.empty() && !McpServer::IsInitialize(*parsed)) {
      // The server restarted (or expired the session): open a new one the
      // way the client did, then resend.
      std::cerr << "devstream mcp: session lost; re-initializing with " << url << "\n";
      state = RelayState{};
      HttpReply init = Post(url, initialize_line, &state, default_project, api_key);
      if (init.error.empty() && init.status == 200) {
        Post(url, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", &state,
             default_project, api_key);
        a = Post(url, line, &state, default_project, api_key);
      }
    }
    if (a.status >= 400 && a.status < 500) {
      // Transport-level refusals carry a JSON-RPC error without an id:
      // answer each request of the message with it.
      std::string message = "HTTP " + std::to_string(a.status);
      if (auto err = ParseJson(a.body, 64); err.ok() && err->is_object()) {
        if (const auto* e = err->as_object().if_contains("error"); e && e->is_object()) {
          if (const auto* m = e->as_object().if_contains("message"); m && m->is_string()) {
            message = std::string(m->as_string());
          }
        }
      }
      for (const auto& id : RequestIds(*parsed)) {
        WriteMessage(out, ToJsonString(ErrorResponse(id, -32600, message)));
      }
      continue;
    }
    if (!a.error.empty() || a.status >= 500 || a.status == 0) {
      std::string why = a.error.empty() ? "HTTP " + std::to_string(a.status) : a.error;
      std::cerr << "devstream mcp: relay to " << url << " failed: " << why << "\n";
      for (const auto& id : RequestIds(*parsed)) {
        WriteMessage(
            out, ToJsonString(ErrorResponse(id, -32603,
                                            "DevStream server at " + base_url +
                                                " is unreachable (" + why + "); retry shortly")));
      }
      continue;
    }
    if (a.status == 202 || a.body.empty()) continue;
    std::vector<std::string> messages;
    if (a.content_type.rfind("text/event-stream", 0) == 0) {
      messages = SseMessages(a.body);
    } else {
      messages.push_back(a.body);
    }
    for (const auto& m : messages) {
      auto reply = ParseJson(m, 256);
      if (!reply.ok()) continue;
      // Remember the negotiated version for the MCP-Protocol-Version header.
      if (McpServer::IsInitialize(*parsed) && reply->is_object()) {
        if (const auto* r = reply->as_object().if_contains("result"); r && r->is_object()) {
          if (const auto* v = r->as_object().if_contains("protocolVersion"); v && v->is_string()) {
            state.protocol_version = std::string(v->as_string());
          }
        }
      }
      WriteMessage(out, ToJsonString(*reply));
    }
  }
}

bool ServerReachable(const std::string& base_url, int timeout_ms) {
  HttpCall call;
  call.url = base_url + "/version";
  call.connect_timeout_ms = timeout_ms;
  call.timeout_ms = timeout_ms;
  HttpReply r = HttpRequest(call);
  return r.error.empty() && r.status == 200 && r.body.find("\"devstream\"") != std::string::npos;
}

}  // namespace ds::mcp
