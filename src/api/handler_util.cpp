#include "api/handler_util.h"

#include <cerrno>
#include <cstdlib>
#include <set>

#include "core/encoding.h"

namespace ds::api {

Result<json::value> ReadJsonBody(const Request& req) {
  const std::string* ct = req.Header("content-type");
  if (req.body.empty()) {
    return Status::Malformed("request body must be a JSON object (Content-Type: application/json)");
  }
  if (!ct || ct->rfind("application/json", 0) != 0) {
    return Status::Malformed("Content-Type must be application/json, got " +
                             (ct ? "\"" + *ct + "\"" : std::string("none")));
  }
  return ParseJson(req.body);
}

// Reads the optional "version" from If-Match ("3", W/"3" or 3).
Result<std::optional<int64_t>> IfMatchVersion(const Request& req) {
  const std::string* h = req.Header("if-match");
  if (!h) return std::optional<int64_t>();
  std::string v = *h;
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Status::Malformed("If-Match must be a version number such as \"3\", got " + *h);
  }
  return std::optional<int64_t>(std::stoll(v));
}

// Merges If-Match with a body "version"; they must agree when both are given.
Result<std::optional<int64_t>> MergeVersion(const Request& req, std::optional<int64_t> body) {
  DS_ASSIGN_OR_RETURN(auto header, IfMatchVersion(req));
  if (header && body && *header != *body) {
    return Status::InvalidArgument("If-Match (" + std::to_string(*header) + ") and body version (" +
                                   std::to_string(*body) + ") disagree");
  }
  return header ? header : body;
}

// Validates the query string: only `allowed` keys, each at most once.
Status CheckQuery(const Request& req, std::initializer_list<std::string_view> allowed) {
  DS_RETURN_IF_ERROR(CheckHeaders(req));
  std::set<std::string> seen;
  for (const auto& [k, v] : req.query) {
    bool ok = false;
    for (auto a : allowed) ok |= (k == a);
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument("unknown query parameter \"" + k + "\"" +
                                     (list.empty() ? "" : "; allowed: " + list))
          .WithDetail("parameter", json::string(k));
    }
    if (!seen.insert(k).second) {
      return Status::InvalidArgument("query parameter \"" + k + "\" given twice")
          .WithDetail("parameter", json::string(k));
    }
  }
  return Status::Ok();
}

Result<std::optional<int>> QueryInt(const Request& req, std::string_view key, int min, int max) {
  auto v = req.Query(key);
  if (!v) return std::optional<int>();
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE || n < min || n > max) {
    return Status::InvalidArgument("query parameter " + std::string(key) +
                                   " must be an integer between " + std::to_string(min) + " and " +
                                   std::to_string(max) + ", got \"" + *v + "\"")
        .WithDetail("parameter", json::string(key));
  }
  return std::optional<int>(static_cast<int>(n));
}

Result<std::optional<std::string>> QueryEnum(const Request& req, std::string_view key,
                                             const std::vector<std::string_view>& allowed) {
  auto v = req.Query(key);
  if (!v) return std::optional<std::string>();
  for (auto a : allowed) {
    if (*v == a) return v;
  }
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  return Status::InvalidArgument("query parameter " + std::string(key) +
                                 " must be one of: " + list + "; got \"" + *v + "\"")
      .WithDetail("parameter", json::string(key));
}

// The project a request names: query, then header (the body is read by decoders).
std::optional<std::string> RequestProject(const Request& req) {
  if (auto q = req.Query("project"); q && !q->empty()) return q;
  if (const std::string* h = req.Header("x-devstream-project"); h && !h->empty()) return *h;
  return std::nullopt;
}

std::optional<std::string> RequestActor(const Request& req) {
  if (const std::string* h = req.Header("x-devstream-agent"); h && !h->empty()) return *h;
  return std::nullopt;
}

Status CheckHeaders(const Request& req) {
  for (const char* name : {"x-devstream-project", "x-devstream-agent"}) {
    if (const std::string* h = req.Header(name); h && !IsValidUtf8(*h)) {
      return Status::Malformed(std::string(name) + " header is not valid UTF-8");
    }
  }
  if (auto agent = RequestActor(req); agent && Utf8Length(*agent) > 200) {
    return Status::InvalidArgument("X-DevStream-Agent must be at most 200 characters")
        .WithDetail("header", "X-DevStream-Agent");
  }
  return Status::Ok();
}

Result<std::optional<bool>> QueryBool(const Request& req, std::string_view key) {
  auto v = req.Query(key);
  if (!v) return std::optional<bool>();
  if (*v == "1" || *v == "true") return std::optional<bool>(true);
  if (*v == "0" || *v == "false") return std::optional<bool>(false);
  return Status::InvalidArgument("query parameter " + std::string(key) +
                                 " must be true/false or 1/0, got \"" + *v + "\"")
      .WithDetail("parameter", json::string(key));
}

Response NoContent() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

}  // namespace ds::api
