// Router maps (method, path pattern) pairs to synchronous handlers.
// Patterns are '/'-separated segments, each a literal or a whole-segment
// parameter: "/api/v1/tasks/{id}/dependencies/{dep}". When several patterns
// match a path, the one with a literal at the first position where they differ
// wins, so "/api/v1/tasks/ready" beats "/api/v1/tasks/{id}" regardless of the
// order of Add() calls. A trailing '/' on the request path is ignored; a
// parameter never matches an empty segment.
// Dispatch never throws: unknown path -> 404, known path with another method ->
// 405 with an Allow header (both problem+json), a handler exception -> 500.
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

class Router {
 public:
  // `method` is upper-case ("GET"); adding the same method and pattern shape
  // twice replaces the earlier handler. HEAD requests fall back to the GET
  // handler when no HEAD route matches (the server then omits the body).
  void Add(std::string method, std::string pattern, Handler h);

  // Fills req.params from the matched pattern and runs its handler.
  Response Dispatch(Request& req) const;
  // Runs before every dispatch; a returned response answers the request
  // instead of the route (rate limits, host checks). Set before serving.
  void SetGuard(std::function<std::optional<Response>(Request&)> guard) {
    guard_ = std::move(guard);
  }

 private:
  std::function<std::optional<Response>(Request&)> guard_;
  struct Segment {
    std::string text;  // literal text, or the parameter's name
    bool param = false;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    Handler handler;
  };

  std::vector<Route> routes_;
};

}  // namespace ds::api
