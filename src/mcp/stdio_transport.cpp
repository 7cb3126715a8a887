#include "mcp/stdio_transport.h"

#include <curl/curl.h>

#include <iostream>

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

size_t Append(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct RelayState {
  std::string session_id, protocol_version;
};

size_t CaptureHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  auto* state = static_cast<RelayState*>(user);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "mcp-session-id") {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t\r\n") + 1);
      state->session_id = v;
    }
  }
  return size * n;
}

struct HttpAnswer {
  long status = 0;
  std::string body, content_type, error;
};

HttpAnswer Post(const std::string& url, const std::string& body, RelayState* state,
                const std::string& default_project) {
  HttpAnswer a;
  CURL* curl = curl_easy_init();
  if (!curl) {
    a.error = "curl_easy_init failed";
    return a;
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json, text/event-stream");
  std::string sid = "Mcp-Session-Id: " + state->session_id;
  std::string ver = "MCP-Protocol-Version: " + state->protocol_version;
  std::string proj = "X-DevStream-Project: " + default_project;
  if (!state->session_id.empty()) headers = curl_slist_append(headers, sid.c_str());
  if (!state->protocol_version.empty()) headers = curl_slist_append(headers, ver.c_str());
  if (!default_project.empty()) headers = curl_slist_append(headers, proj.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 300000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CaptureHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, state);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "devstream-mcp-relay/" DEVSTREAM_VERSION);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    a.error = curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a.status);
    char* ct = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) a.content_type = ct;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return a;
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
    if (auto reply = server.HandleText(line, session, default_project)) WriteMessage(out, *reply);
  }
}

void RunStdioRelay(const std::string& base_url, std::istream& in, std::ostream& out,
                   const std::string& default_project) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
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
    HttpAnswer a = Post(url, line, &state, default_project);
    if (a.status == 404 && !initialize_line.empty() && !McpServer::IsInitialize(*parsed)) {
      // The server restarted (or expired the session): open a new one the
      // way the client did, then resend.
      std::cerr << "devstream mcp: session lost; re-initializing with " << url << "\n";
      state = RelayState{};
      HttpAnswer init = Post(url, initialize_line, &state, default_project);
      if (init.error.empty() && init.status == 200) {
        Post(url, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", &state,
             default_project);
        a = Post(url, line, &state, default_project);
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
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL* curl = curl_easy_init();
  if (!curl) return false;
  std::string body;
  std::string url = base_url + "/version";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  return rc == CURLE_OK && status == 200 && body.find("\"devstream\"") != std::string::npos;
}

}  // namespace ds::mcp
