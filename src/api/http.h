// Plain HTTP request/response values shared by the server, the router and the
// handlers, plus the helpers every handler needs: JSON replies and RFC 9457
// problem+json errors built from a ds::Status. No Beast/Asio here, so handler
// code compiles quickly and can be unit-tested without a socket.
// Invariants (for requests built by HttpServer): header names are lower-case,
// `path` and `query` are the percent-decoded parts of `target`, `request_id`
// is non-empty and safe to echo. Plain values: copyable, not synchronised.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ds::api {

// Who made a request, when API keys are on (security.auth_enabled): the key
// and what it grants. Absent when auth is off — then every caller may do
// everything, as on a developer's loopback server.
struct Caller {
  std::string key_id;
  std::string key_name;
  uint8_t scopes = 0;      // ds::ApiScope bits (write implies read, admin both)
  std::string project_id;  // "" unless the key is bound to one project
};

struct Request {
  std::string method;                                        // "GET"
  std::string target;                                        // raw target "/api/v1/tasks?limit=2"
  std::string path;                                          // percent-decoded path without query
  std::multimap<std::string, std::string> query;             // percent-decoded ('+' is space)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string request_id;  // client's X-Request-Id if sane, else generated
  std::string remote_addr;
  std::string client_addr;  // the real client (RequestGuard: X-Forwarded-For from trusted proxies)
  std::map<std::string, std::string> params;  // path parameters filled by the Router
  std::string route;             // the matched pattern ("/api/v1/tasks/{id}"), "" when none matched
  std::optional<Caller> caller;  // set by the guard when auth is on

  // First header with this (lower-case) name; nullptr if absent.
  const std::string* Header(std::string_view lower_name) const;
  // First value of a query parameter.
  std::optional<std::string> Query(std::string_view key) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// `v` serialised with the given status.
Response JsonResponse(int status, const boost::json::value& v);

// RFC 9457 problem+json for a non-OK Status:
// {"type", "title", "status", "detail", "instance": req.path, "request_id", ...details}.
// `type` is "https://devstream.dev/problems/<code_name>", or "about:blank" for
// internal errors (they mean nothing beyond the HTTP status). Detail members
// never override the standard ones. An OK status is treated as an internal bug.
Response ProblemResponse(const ds::Status& st, const Request& req);
// Problem for HTTP statuses no StatusCode maps to (405, 408, 431, ...):
// type "about:blank", title the standard reason phrase.
Response ProblemResponse(int http_status, std::string_view detail, const Request& req);

// The standard reason phrase ("Not Found"), or "Unknown".
std::string_view ReasonPhrase(int http_status);

// Decodes %XX escapes (and '+' as space when `plus_is_space`). nullopt on a
// truncated or non-hex escape, or on an escaped NUL.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// Fills req.path and req.query from req.target. Accepts origin-form
// ("/a?b=c") and absolute-form ("http://host/a?b=c"); "*" becomes path "*".
// Malformed (400) on bad escapes or other target forms.
ds::Status ParseTarget(Request& req);

// True for 1..128 characters of [A-Za-z0-9._-]: safe to log and echo.
bool IsSaneRequestId(std::string_view id);
// True when a header a handler supplies can go on the wire: the name is an
// RFC 9110 token and the value has no CR, LF or NUL.
bool IsSendableHeader(std::string_view name, std::string_view value);
// The client's id when sane, else a new random one (32 hex chars).
std::string ChooseRequestId(const std::string* client_id);

}  // namespace ds::api
