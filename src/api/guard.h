// RequestGuard runs before routing: it works out who the client is, refuses
// requests for hosts this server does not serve, and rate-limits clients.
//   client address  the peer address; when the peer is a trusted proxy
//                   (security.trusted_proxies), the nearest address in
//                   X-Forwarded-For that is not itself a trusted proxy, so
//                   behind nginx limits and the /metrics allowlist see the
//                   real client. X-Forwarded-For from anyone else is ignored.
//   allowed hosts   with security.allowed_hosts set, a Host header (port
//                   ignored) outside the list gets 400.
//   rate limit      a token bucket per client address: burst tokens,
//                   refilled at rate_per_minute; an empty bucket gets 429
//                   with Retry-After. /health, /health/live and
//                   /health/ready are never limited (orchestrators poll them).
// Thread-safety: Admit may run concurrently (the buckets are locked).
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/http.h"

namespace ds::api {

struct GuardOptions {
  std::vector<std::string> trusted_proxies;
  std::vector<std::string> allowed_hosts;  // empty: any Host
  int rate_per_minute = 0;                 // 0: no rate limit
  int burst = 100;
};

class RequestGuard {
 public:
  explicit RequestGuard(GuardOptions options);
  // Sets req.client_addr; a response when the request must not proceed.
  std::optional<Response> Admit(Request& req);

 private:
  bool Trusted(const std::string& addr) const;
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };

  GuardOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::chrono::steady_clock::time_point last_sweep_;
};

}  // namespace ds::api
