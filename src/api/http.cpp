#include "api/http.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/encoding.h"
#include "core/id.h"
#include "core/json.h"

namespace ds::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Response MakeProblem(int http_status, std::string_view type, std::string_view title,
                     std::string_view detail, const Request& req,
                     const boost::json::object* extensions) {
  boost::json::object o;
  if (extensions != nullptr) o = *extensions;
  for (auto& member : o) {
    if (member.value().is_string()) member.value() = ds::ToValidUtf8(member.value().as_string());
  }
  // Standard members are assigned last so extensions cannot override them.
  o["type"] = type;
  o["title"] = title;
  o["status"] = http_status;
  // Details and paths may echo request bytes; a JSON body must be UTF-8.
  o["detail"] = ds::ToValidUtf8(detail);
  o["instance"] = ds::ToValidUtf8(req.path);
  o["request_id"] = req.request_id;
  Response res;
  res.status = http_status;
  res.content_type = "application/problem+json";
  res.body = ds::ToJsonString(o);
  return res;
}

}  // namespace

const std::string* Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

std::optional<std::string> Request::Query(std::string_view key) const {
  auto it = query.find(std::string(key));
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Response JsonResponse(int status, const boost::json::value& v) {
  Response res;
  res.status = status;
  res.body = ds::ToJsonString(v);
  return res;
}

Response ProblemResponse(const ds::Status& st, const Request& req) {
  if (st.ok()) {
    return MakeProblem(500, "about:blank", TitleFor(StatusCode::kInternal),
                       "an OK status was reported as an error", req, nullptr);
  }
  std::string type = st.code() == StatusCode::kInternal
                         ? std::string("about:blank")
                         : "https://devstream.dev/problems/" + std::string(st.CodeName());
  return MakeProblem(HttpStatusFor(st.code()), type, TitleFor(st.code()), st.message(), req,
                     &st.details());
}

Response ProblemResponse(int http_status, std::string_view detail, const Request& req) {
  return MakeProblem(http_status, "about:blank", ReasonPhrase(http_status), detail, req, nullptr);
}

std::string_view ReasonPhrase(int http_status) {
  switch (http_status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;  // NUL would truncate C strings downstream
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

ds::Status ParseTarget(Request& req) {
  std::string_view t = req.target;
  req.path.clear();
  req.query.clear();
  if (t == "*") {
    req.path = "*";
    return ds::Status::Ok();
  }
  bool absolute = false;
  // absolute-form: strip "scheme://authority" (RFC 9112 §3.2.2 says servers accept it).
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (t.size() >= scheme.size()) {
      bool match = true;
      for (size_t i = 0; i < scheme.size(); ++i) {
        char c = t[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != scheme[i]) match = false;
      }
      if (match) {
        t.remove_prefix(scheme.size());
        size_t slash = t.find_first_of("/?");
        t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
        absolute = true;
        break;
      }
    }
  }
  if (t.empty() || (t.front() != '/' && !(absolute && t.front() == '?'))) {
    return ds::Status::Malformed("request target must start with '/'");
  }
  size_t q = t.find('?');
  std::string_view raw_path = t.substr(0, q);
  std::string_view raw_query = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
  // Drop a fragment; clients should not send one, but it is not part of the query.
  if (size_t hash = raw_query.find('#'); hash != std::string_view::npos) {
    raw_query = raw_query.substr(0, hash);
  }
  if (raw_path.empty()) raw_path = "/";
  auto path = PercentDecode(raw_path, /*plus_is_space=*/false);
  if (!path) return ds::Status::Malformed("request path has an invalid percent-escape");
  if (!ds::IsValidUtf8(*path)) return ds::Status::Malformed("request path is not valid UTF-8");
  req.path = std::move(*path);
  while (!raw_query.empty()) {
    size_t amp = raw_query.find('&');
    std::string_view pair = raw_query.substr(0, amp);
    raw_query = amp == std::string_view::npos ? std::string_view() : raw_query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), true);
    auto value = PercentDecode(
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) return ds::Status::Malformed("query string has an invalid percent-escape");
    if (!ds::IsValidUtf8(*key) || !ds::IsValidUtf8(*value)) {
      return ds::Status::Malformed("query string is not valid UTF-8");
    }
    req.query.emplace(std::move(*key), std::move(*value));
  }
  return ds::Status::Ok();
}

bool IsSendableHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    bool token = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!token) return false;
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string ChooseRequestId(const std::string* client_id) {
  if (client_id != nullptr && IsSaneRequestId(*client_id)) return *client_id;
  return ds::CorrelationId();
}

}  // namespace ds::api
