// Fuzz target: the JSON body of every REST endpoint. The first line names a
// route ("POST /api/v1/tasks", optionally with "?query"); a line that names
// none picks one from the table by its hash. The rest of the input is the
// body, with $NAME placeholders replaced by fixture ids (see fuzz_world.h).
// The request goes through the real Router, guard and handlers. Invariants
// beyond CheckResponse: no input makes a 5xx (except /health, which reports
// the machine), and a POST/PATCH body that is not JSON never succeeds.
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_world.h"

namespace {

struct Route {
  std::string_view method;
  std::string_view path;  // with $NAME placeholders for path parameters
};

// Every route of src/api/openapi.json.
constexpr Route kRoutes[] = {
    {"GET", "/api/v1/projects"},
    {"POST", "/api/v1/projects"},
    {"GET", "/api/v1/projects/$PROJECT"},
    {"POST", "/api/v1/plans"},
    {"GET", "/api/v1/plans"},
    {"GET", "/api/v1/plans/$PLAN"},
    {"PATCH", "/api/v1/plans/$PLAN"},
    {"DELETE", "/api/v1/plans/$NEW_PLAN"},
    {"GET", "/api/v1/plans/$PLAN/graph"},
    {"POST", "/api/v1/plans/$PLAN/phases"},
    {"GET", "/api/v1/plans/$PLAN/phases"},
    {"GET", "/api/v1/phases/$PHASE"},
    {"PATCH", "/api/v1/phases/$PHASE"},
    {"DELETE", "/api/v1/phases/$NEW_PHASE"},
    {"POST", "/api/v1/phases/$PHASE/tasks"},
    {"GET", "/api/v1/phases/$PHASE/tasks"},
    {"POST", "/api/v1/tasks"},
    {"GET", "/api/v1/tasks"},
    {"GET", "/api/v1/tasks/ready"},
    {"POST", "/api/v1/tasks/claim"},
    {"GET", "/api/v1/tasks/$TASK"},
    {"PATCH", "/api/v1/tasks/$TASK"},
    {"DELETE", "/api/v1/tasks/$NEW_TASK"},
    {"POST", "/api/v1/tasks/$TASK/transition"},
    {"POST", "/api/v1/tasks/$TASK/heartbeat"},
    {"POST", "/api/v1/tasks/$TASK2/dependencies"},
    {"DELETE", "/api/v1/tasks/$TASK2/dependencies/$TASK"},
    {"GET", "/api/v1/tasks/$TASK/events"},
    {"POST", "/api/v1/memories"},
    {"GET", "/api/v1/memories"},
    {"POST", "/api/v1/memories/batch"},
    {"GET", "/api/v1/memories/stats"},
    {"GET", "/api/v1/memories/$MEMORY"},
    {"PATCH", "/api/v1/memories/$MEMORY"},
    {"DELETE", "/api/v1/memories/$NEW_MEMORY"},
    {"POST", "/api/v1/memories/$NEW_MEMORY/forget"},
    {"POST", "/api/v1/search"},
    {"POST", "/api/v1/context"},
    {"GET", "/api/v1/jobs"},
    {"POST", "/api/v1/jobs"},
    {"GET", "/api/v1/jobs/$JOB"},
    {"POST", "/api/v1/jobs/$JOB/retry"},
    {"POST", "/api/v1/sessions"},
    {"GET", "/api/v1/sessions/latest"},
    {"GET", "/api/v1/sessions/$SESSION"},
    {"POST", "/api/v1/sessions/$SESSION/end"},
    {"GET", "/health"},
    {"GET", "/health/live"},
    {"GET", "/health/ready"},
    {"GET", "/version"},
    {"GET", "/openapi.json"},
    {"POST", "/mcp"},
    {"DELETE", "/mcp"},
    {"POST", "/api/v1/hooks/SessionStart"},
    {"POST", "/api/v1/hooks/UserPromptSubmit"},
    {"POST", "/api/v1/hooks/PreToolUse"},
    {"POST", "/api/v1/hooks/PostToolUse"},
    {"POST", "/api/v1/hooks/PostToolUseFailure"},
    {"POST", "/api/v1/hooks/Stop"},
    {"POST", "/api/v1/hooks/SessionEnd"},
    {"GET", "/metrics"},
};
constexpr size_t kRouteCount = sizeof(kRoutes) / sizeof(kRoutes[0]);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ds::fuzz::World& world = ds::fuzz::World::Get();
  auto [line, body] = ds::fuzz::SplitFirstLine(ds::fuzz::AsString(data, size));
  std::string_view head(line);
  std::string_view query;
  if (size_t q = head.find('?'); q != std::string_view::npos) {
    query = head.substr(q);
    head = head.substr(0, q);
  }
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (head.size() == r.method.size() + 1 + r.path.size() &&
        head.substr(0, r.method.size()) == r.method && head[r.method.size()] == ' ' &&
        head.substr(r.method.size() + 1) == r.path) {
      route = &r;
      break;
    }
  }
  if (!route) {
    route = &kRoutes[ds::fuzz::Fnv1a(line) % kRouteCount];
    query = {};
  }

  ds::api::Request req;
  req.method = std::string(route->method);
  req.target = world.Substitute(std::string(route->path) + std::string(query));
  req.headers = {{"content-type", "application/json"},
                 {"accept", "application/json, text/event-stream"}};
  req.body = world.Substitute(std::move(body));
  ds::api::Response res = world.Serve(req);
  ds::fuzz::CheckResponse(req, res);

  if (res.status >= 500 && req.route != "/health") {
    ds::fuzz::Fail("server error for " + std::string(route->method) + " " +
                   std::string(route->path) + ": " + std::to_string(res.status) + " " + res.body);
  }
  // POST routes without a request body in the OpenAPI document ignore it.
  const bool has_body = (req.method == "POST" || req.method == "PATCH") &&
                        route->path.find("/forget") == std::string_view::npos &&
                        route->path.find("/retry") == std::string_view::npos;
  if (has_body && !req.body.empty() && res.status < 300) {
    boost::system::error_code ec;
    boost::json::parse(req.body, ec);
    if (ec) {
      ds::fuzz::Fail("malformed JSON accepted by " + std::string(route->method) + " " +
                     std::string(route->path) + ": " + std::to_string(res.status));
    }
  }
  return 0;
}
