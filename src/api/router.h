// Router maps (method, path pattern) pairs to synchronous handlers.
// Patterns are '/'-separated segments, each a literal or a whole-segment
// parameter: "/api/v1/tasks/{id}/dependencies/{dep}". When several patterns
// match a path, the one with a literal at the first position where they differ
// wins, so "/api/v1/tasks/ready" beats "/api/v1/tasks/{id}" regardless of the
// order of Add() calls. A trailing '/' on the request path is ignored; a
// parameter never matches an empty segment.
// Dispatch never throws: unknown path -> 404, known path with another method ->
// 405 with an Allow header (both problem+json), a handler exception -> 500.
// Each route declares the access it needs (Access); a RouteGate, when set,
// admits the request before routing and authorises it against the matched
// route's access before the handler runs, and may decorate every response.
// Thread-safety: Add() only during set-up; afterwards Dispatch() may run
// concurrently from any number of threads (it only reads the table).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "api/http.h"

namespace ds::api {

using Handler = std::function<Response(Request&)>;

// What a route needs from the caller's API key (when auth is on).
//   kPublic  nothing: health probes, the OpenAPI document, /metrics (which
//            checks admin scope or its address allowlist itself)
//   kRead / kWrite / kAdmin  a key with that scope (higher scopes include lower)
enum class Access { kPublic, kRead, kWrite, kAdmin };

// Checks run around dispatch. Implementations must be thread-safe.
class RouteGate {
 public:
  virtual ~RouteGate() = default;
  // Before routing (client address, Host, CORS preflight); a response ends
  // the request.
  virtual std::optional<Response> Admit(Request& req) = 0;
  // After the route matched (req.route and req.params set), before its handler.
  virtual std::optional<Response> Authorize(Request& req, Access access) = 0;
  // Every response, whoever produced it (CORS headers).
  virtual void Finish(const Request& req, Response& res) const = 0;
};

class Router {
 public:
  // `method` is upper-case ("GET"); adding the same method and pattern shape
  // twice replaces the earlier handler. HEAD requests fall back to the GET
  // handler when no HEAD route matches (the server then omits the body).
  // Without `access`, GET and HEAD routes need kRead and others kWrite.
  void Add(std::string method, std::string pattern, Handler h);
  void Add(std::string method, std::string pattern, Handler h, Access access);

  // Fills req.params from the matched pattern and runs its handler.
  Response Dispatch(Request& req) const;
  // Set before serving; must outlive the router's use.
  void SetGate(RouteGate* gate) { gate_ = gate; }

 private:
  Response DispatchRoute(Request& req) const;

  RouteGate* gate_ = nullptr;
  struct Segment {
    std::string text;  // literal text, or the parameter's name
    bool param = false;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    Handler handler;
    Access access;
  };

  std::vector<Route> routes_;
};

}  // namespace ds::api
