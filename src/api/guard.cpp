#include "api/guard.h"

#include <algorithm>
#include <cmath>

namespace ds::api {
namespace {

std::string Trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string_view::npos) return "";
  size_t b = s.find_last_not_of(" \t");
  return std::string(s.substr(a, b - a + 1));
}

// "example.com:8443" -> "example.com"; "[::1]:80" -> "::1".
std::string HostWithoutPort(const std::string& host) {
  if (!host.empty() && host[0] == '[') {
    size_t end = host.find(']');
    return end == std::string::npos ? host : host.substr(1, end - 1);
  }
  size_t colon = host.find(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

constexpr char kCorsAllowHeaders[] =
    "Authorization, Content-Type, If-Match, X-Request-Id, X-DevStream-Project, "
    "X-DevStream-Agent, Mcp-Session-Id, MCP-Protocol-Version";
constexpr char kCorsExposeHeaders[] = "ETag, Location, Retry-After, X-Request-Id, Mcp-Session-Id";

bool IsHealthPath(const std::string& path) {
  return path == "/health" || path == "/health/live" || path == "/health/ready";
}

}  // namespace

RequestGuard::RequestGuard(GuardOptions options, AccessControl* access)
    : options_(std::move(options)), access_(access) {
  for (auto& h : options_.allowed_hosts) h = Lower(h);
}

bool RequestGuard::Trusted(const std::string& addr) const {
  return std::find(options_.trusted_proxies.begin(), options_.trusted_proxies.end(), addr) !=
         options_.trusted_proxies.end();
}

bool RequestGuard::CorsAllowed(const std::string* origin) const {
  return origin && std::find(options_.cors_origins.begin(), options_.cors_origins.end(), *origin) !=
                       options_.cors_origins.end();
}

std::optional<Response> RequestGuard::Admit(Request& req) {
  req.client_addr = req.remote_addr;
  if (Trusted(req.remote_addr)) {
    if (const std::string* xff = req.Header("x-forwarded-for")) {
      // Right to left: the nearest hop not run by us is the client.
      std::vector<std::string> hops;
      size_t pos = 0;
      while (pos <= xff->size()) {
        size_t end = xff->find(',', pos);
        if (end == std::string::npos) end = xff->size();
        std::string hop = Trim(std::string_view(*xff).substr(pos, end - pos));
        if (!hop.empty()) hops.push_back(hop);
        pos = end + 1;
      }
      for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
        req.client_addr = *it;
        if (!Trusted(*it)) break;
      }
    }
  }
  if (!options_.allowed_hosts.empty()) {
    const std::string* host = req.Header("host");
    std::string name = host ? Lower(HostWithoutPort(*host)) : "";
    if (std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), name) ==
        options_.allowed_hosts.end()) {
      return ProblemResponse(
          Status::Malformed("host \"" + name + "\" is not served here (security.allowed_hosts)"),
          req);
    }
  }
  const std::string* origin = req.Header("origin");
  if (req.method == "OPTIONS" && origin && req.Header("access-control-request-method") &&
      !options_.cors_origins.empty()) {
    if (!CorsAllowed(origin)) {
      return ProblemResponse(
          Status::Forbidden("origin " + *origin + " is not allowed (security.cors_origins)"), req);
    }
    Response r;
    r.status = 204;
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE");
    r.headers.emplace_back("Access-Control-Allow-Headers", kCorsAllowHeaders);
    r.headers.emplace_back("Access-Control-Max-Age", "600");
    return r;
  }
  return std::nullopt;
}

std::optional<Response> RequestGuard::Authorize(Request& req, Access access) {
  bool presented = req.Header("authorization") != nullptr;
  if (access_ && (access != Access::kPublic || presented)) {
    Result<Caller> caller = access_->Authenticate(req);
    if (!caller.ok()) {
      // Failed attempts count against the address, so guessing costs.
      if (auto limited = Charge(req.client_addr, req)) return limited;
      Response r = ProblemResponse(caller.status(), req);
      r.headers.emplace_back("WWW-Authenticate", presented ? "Bearer realm=\"devstream\", "
                                                             "error=\"invalid_token\""
                                                           : "Bearer realm=\"devstream\"");
      return r;
    }
    req.caller = std::move(*caller);
  }
  if (!IsHealthPath(req.path)) {
    if (auto limited = Charge(req.caller ? "key:" + req.caller->key_id : req.client_addr, req)) {
      return limited;
    }
  }
  if (req.caller && access != Access::kPublic) {
    if (Status st = access_->Authorize(req, access); !st.ok()) return ProblemResponse(st, req);
  }
  return std::nullopt;
}

void RequestGuard::Finish(const Request& req, Response& res) const {
  const std::string* origin = req.Header("origin");
  if (!CorsAllowed(origin)) return;
  res.headers.emplace_back("Access-Control-Allow-Origin", *origin);
  res.headers.emplace_back("Vary", "Origin");
  res.headers.emplace_back("Access-Control-Expose-Headers", kCorsExposeHeaders);
}

std::optional<Response> RequestGuard::Charge(const std::string& key, const Request& req) {
  if (options_.rate_per_minute <= 0) return std::nullopt;
  double rate = options_.rate_per_minute / 60.0;  // tokens per second
  double capacity = std::max(1, options_.burst);
  auto now = std::chrono::steady_clock::now();
  double wait_s = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Forget idle clients now and then, so the table stays bounded.
    if (now - last_sweep_ > std::chrono::minutes(1)) {
      for (auto it = buckets_.begin(); it != buckets_.end();) {
        bool full = it->second.tokens +
                        rate * std::chrono::duration<double>(now - it->second.updated).count() >=
                    capacity;
        it = full ? buckets_.erase(it) : std::next(it);
      }
      last_sweep_ = now;
    }
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{capacity, now});
    Bucket& b = it->second;
    if (!fresh) {
      b.tokens = std::min(capacity,
                          b.tokens + rate * std::chrono::duration<double>(now - b.updated).count());
      b.updated = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return std::nullopt;
    }
    wait_s = (1 - b.tokens) / rate;
  }
  int retry = static_cast<int>(std::ceil(wait_s));
  std::string who = req.caller ? "API key \"" + req.caller->key_name + "\"" : req.client_addr;
  Response r = ProblemResponse(Status::RateLimited("too many requests from " + who + "; retry in " +
                                                   std::to_string(retry) + " s"),
                               req);
  r.headers.emplace_back("Retry-After", std::to_string(retry));
  return r;
}

}  // namespace ds::api
