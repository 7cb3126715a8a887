// A blocking HTTP/1.1 client call, shared by every outbound request the
// binary makes (embedding providers, the MCP and hook relays, `devstream
// health`). One call per request; no connection reuse.
//
// Plain http:// is spoken directly over a socket (Boost.Beast's parser reads
// the reply), so the hook and relay processes never load a TLS stack: their
// start-up time is dominated by the dynamic loader. https:// and proxied
// requests (http_proxy/HTTP_PROXY/all_proxy set) go through libcurl, which is
// loaded with dlopen on first use; when it is missing the call fails with a
// message naming libcurl.so.4.
// Thread-safety: HttpRequest may be called concurrently.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace ds {

struct HttpCall {
  std::string method = "GET";  // GET or POST
  std::string url;
  std::string body;                  // POST only
  std::vector<std::string> headers;  // "Name: value"
  long connect_timeout_ms = 2000;
  long timeout_ms = 30000;              // the whole call, connecting included
  size_t max_reply_bytes = 256u << 20;  // a larger reply fails the call
};

struct HttpReply {
  long status = 0;  // 0 when no response arrived
  std::string body;
  std::string content_type;                    // "" when absent
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string error;                           // transport failure; "" on a response
  bool unreachable = false;                    // nothing listens (refused, unresolved)
};

HttpReply HttpRequest(const HttpCall& call);

}  // namespace ds
