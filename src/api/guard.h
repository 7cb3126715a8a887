// RequestGuard is the server's RouteGate: it works out who the client is,
// refuses requests for hosts this server does not serve, answers CORS,
// authenticates API keys, rate-limits and authorises.
//   client address  the peer address; when the peer is a trusted proxy
//                   (security.trusted_proxies), the nearest address in
//                   X-Forwarded-For that is not itself a trusted proxy, so
//                   behind nginx limits and the /metrics allowlist see the
//                   real client. X-Forwarded-For from anyone else is ignored.
//   allowed hosts   with security.allowed_hosts set, a Host header (port
//                   ignored) outside the list gets 400.
//   CORS            off unless cors_origins lists origins: then requests from
//                   them get Access-Control-Allow-Origin, and their
//                   preflights (OPTIONS) a 204 naming the methods and
//                   headers allowed; a preflight from another origin gets 403.
//   API keys        with an AccessControl (security.auth_enabled), every
//                   route but the public ones needs a valid key (401, with
//                   WWW-Authenticate), a key presented to a public route must
//                   be valid too, and AccessControl::Authorize decides the
//                   rest (403 / 404).
//   rate limit      a token bucket per API key (per client address for
//                   requests without a valid key): burst tokens, refilled at
//                   rate_per_minute; an empty bucket gets 429 with
//                   Retry-After. /health, /health/live and /health/ready are
//                   never limited (orchestrators poll them).
// Thread-safety: all methods may run concurrently (the buckets are locked).
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/access.h"
#include "api/http.h"
#include "api/router.h"

namespace ds::api {

struct GuardOptions {
  std::vector<std::string> trusted_proxies;
  std::vector<std::string> allowed_hosts;  // empty: any Host
  int rate_per_minute = 0;                 // 0: no rate limit
  int burst = 100;
  std::vector<std::string> cors_origins;  // exact origins; empty: CORS off
};

class RequestGuard : public RouteGate {
 public:
  // `access` null: auth off (every caller may do everything).
  RequestGuard(GuardOptions options, AccessControl* access);
  // Sets req.client_addr; refuses other hosts; answers CORS preflights.
  std::optional<Response> Admit(Request& req) override;
  // Authenticates (req.caller), rate-limits and authorises.
  std::optional<Response> Authorize(Request& req, Access access) override;
  // CORS headers for allowed origins.
  void Finish(const Request& req, Response& res) const override;

 private:
  bool Trusted(const std::string& addr) const;
  bool CorsAllowed(const std::string* origin) const;
  // A 429 when the bucket `key` is empty.
  std::optional<Response> Charge(const std::string& key, const Request& req);
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };

  GuardOptions options_;
  AccessControl* access_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::chrono::steady_clock::time_point last_sweep_;
};

}  // namespace ds::api
