#include "api/router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <exception>
#include <set>
#include <string_view>

namespace ds::api {
namespace {

// "/a/b/" -> {"a", "b"}; "/" -> {}. Empty inner segments are kept ("/a//b").
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return out;
  out.reserve(static_cast<size_t>(std::count(path.begin(), path.end(), '/')) + 1);
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler h) {
  Access access = method == "GET" || method == "HEAD" ? Access::kRead : Access::kWrite;
  Add(std::move(method), std::move(pattern), std::move(h), access);
}

void Router::Add(std::string method, std::string pattern, Handler h, Access access) {
  Route route;
  route.access = access;
  route.method = std::move(method);
  for (std::string_view seg : SplitPath(pattern)) {
    Segment s;
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      s.param = true;
      s.text = std::string(seg.substr(1, seg.size() - 2));
    } else {
      s.text = std::string(seg);
    }
    assert(!s.text.empty() && "empty segment or parameter name in route pattern");
    route.segments.push_back(std::move(s));
  }
  route.pattern = std::move(pattern);
  route.handler = std::move(h);
  for (Route& existing : routes_) {
    if (existing.method != route.method || existing.segments.size() != route.segments.size()) {
      continue;
    }
    bool same_shape = true;
    for (size_t i = 0; i < route.segments.size() && same_shape; ++i) {
      const Segment& a = existing.segments[i];
      const Segment& b = route.segments[i];
      same_shape = a.param == b.param && (a.param || a.text == b.text);
    }
    if (same_shape) {
      existing = std::move(route);
      return;
    }
  }
  routes_.push_back(std::move(route));
}

Response Router::Dispatch(Request& req) const {
  if (req.client_addr.empty()) req.client_addr = req.remote_addr;
  std::optional<Response> refused;
  if (gate_) refused = gate_->Admit(req);
  Response res = refused ? std::move(*refused) : DispatchRoute(req);
  if (gate_) gate_->Finish(req, res);
  return res;
}

Response Router::DispatchRoute(Request& req) const {
  const std::vector<std::string_view> parts = SplitPath(req.path);

  // Every route whose pattern matches the path, whatever its method.
  std::vector<const Route*> matches;
  matches.reserve(8);
  for (const Route& r : routes_) {
    if (r.segments.size() != parts.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      const Segment& s = r.segments[i];
      ok = s.param ? !parts[i].empty() : s.text == parts[i];
    }
    if (ok) matches.push_back(&r);
  }
  if (matches.empty()) {
    return ProblemResponse(ds::Status::NotFound("no resource at " + req.path), req);
  }

  // True when `a` is more specific than `b`: a literal at the first position
  // where the two patterns differ in kind.
  auto more_specific = [](const Route* a, const Route* b) {
    for (size_t i = 0; i < a->segments.size(); ++i) {
      if (a->segments[i].param != b->segments[i].param) return !a->segments[i].param;
    }
    return false;
  };
  auto best_for = [&](std::string_view method) -> const Route* {
    const Route* best = nullptr;
    for (const Route* r : matches) {
      if (r->method == method && (best == nullptr || more_specific(r, best))) best = r;
    }
    return best;
  };

  const Route* route = best_for(req.method);
  if (route == nullptr && req.method == "HEAD") route = best_for("GET");
  if (route == nullptr) {
    std::set<std::string> methods;
    for (const Route* r : matches) {
      methods.insert(r->method);
      if (r->method == "GET") methods.insert("HEAD");
    }
    std::string allow;
    for (const std::string& m : methods) {
      if (!allow.empty()) allow += ", ";
      allow += m;
    }
    Response res =
        ProblemResponse(405, "method " + req.method + " is not allowed on " + req.path, req);
    res.headers.emplace_back("Allow", allow);
    return res;
  }

  req.params.clear();
  req.route = route->pattern;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (route->segments[i].param) req.params[route->segments[i].text] = std::string(parts[i]);
  }
  if (gate_) {
    if (auto refused = gate_->Authorize(req, route->access)) return std::move(*refused);
  }
  try {
    return route->handler(req);
  } catch (const std::exception& e) {
    spdlog::error("request {}: {} {} (route {}) threw: {}", req.request_id, req.method, req.path,
                  route->pattern, e.what());
  } catch (...) {
    spdlog::error("request {}: {} {} (route {}) threw a non-standard exception", req.request_id,
                  req.method, req.path, route->pattern);
  }
  return ProblemResponse(ds::Status::Internal("the server failed to handle the request"), req);
}

}  // namespace ds::api
