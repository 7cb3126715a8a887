// Helpers shared by the REST handlers: reading JSON bodies (content type,
// syntax), strict query-string validation, If-Match versions, the project and
// agent a request names, and a wrapper turning Result<Response> bodies into
// handlers whose errors become problem+json. Stateless; thread-safe.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.h"
#include "core/json.h"
#include "core/status.h"

namespace ds::api {

// Malformed (400) unless the body is non-empty JSON sent as application/json.
Result<json::value> ReadJsonBody(const Request& req);
// The version in If-Match ("3", W/"3" or 3); Malformed when unparsable.
Result<std::optional<int64_t>> IfMatchVersion(const Request& req);
// If-Match merged with a body "version"; they must agree when both are given.
Result<std::optional<int64_t>> MergeVersion(const Request& req, std::optional<int64_t> body);
// InvalidArgument unless every query key is in `allowed` and given once.
Status CheckQuery(const Request& req, std::initializer_list<std::string_view> allowed);
Result<std::optional<int>> QueryInt(const Request& req, std::string_view key, int min, int max);
Result<std::optional<std::string>> QueryEnum(const Request& req, std::string_view key,
                                             const std::vector<std::string_view>& allowed);
Result<std::optional<bool>> QueryBool(const Request& req, std::string_view key);
// `project` query parameter, else the X-DevStream-Project header (a header
// that is not UTF-8 is ignored here and rejected by CheckHeaders).
std::optional<std::string> RequestProject(const Request& req);
// The X-DevStream-Agent header (audit actor).
std::optional<std::string> RequestActor(const Request& req);
// Malformed when X-DevStream-Project / X-DevStream-Agent are not UTF-8;
// InvalidArgument when the agent name exceeds 200 characters.
Status CheckHeaders(const Request& req);
Response NoContent();

// Wraps a handler body returning Result<Response>: errors become problem+json.
template <typename F>
Handler H(F f) {
  return [f](Request& req) -> Response {
    Result<Response> r = f(req);
    if (!r.ok()) return ProblemResponse(r.status(), req);
    return std::move(r).value();
  };
}

}  // namespace ds::api
