#include "core/http_client.h"

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>

namespace ds {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---- Plain http:// over a socket -------------------------------------------

struct PlainTarget {
  std::string host;         // without IPv6 brackets
  std::string port;         // "80" when the URL names none
  std::string host_header;  // as written in the URL
  std::string path;         // origin-form request target
};

// http://host[:port][/path][?query]; nullopt for anything else (other
// schemes, user info), which goes to libcurl.
std::optional<PlainTarget> ParsePlainUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() <= kScheme.size() || Lower(url.substr(0, kScheme.size())) != kScheme) {
    return std::nullopt;
  }
  std::string rest = url.substr(kScheme.size());
  size_t end = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, end);
  std::string path = end == std::string::npos ? "/" : rest.substr(end);
  if (path[0] == '?') path.insert(0, "/");
  if (size_t hash = path.find('#'); hash != std::string::npos) path.erase(hash);
  if (path.empty() || path[0] != '/') path.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  PlainTarget t;
  t.host_header = authority;
  std::string port;
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    t.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    t.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (t.host.empty()) return std::nullopt;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  t.port = port.empty() ? "80" : port;
  t.path = path;
  return t;
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = Lower(host);
  return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

bool ProxyConfigured() {
  for (const char* name : {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}) {
    const char* v = std::getenv(name);
    if (v && *v) return true;
  }
  return false;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, RemainingMs(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

class Socket {
 public:
  Socket() = default;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Connects to the first address that accepts; sets reply->error (and
// unreachable when every address refused or the name did not resolve).
bool Connect(const PlainTarget& t, long connect_timeout_ms, Clock::time_point deadline,
             Socket* sock, HttpReply* reply) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  if (int rc = ::getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &addrs); rc != 0) {
    reply->error = "could not resolve host " + t.host + ": " + ::gai_strerror(rc);
    reply->unreachable = true;
    return false;
  }
  auto connect_deadline =
      std::min(deadline, Clock::now() + std::chrono::milliseconds(connect_timeout_ms));
  bool all_refused = true;
  std::string last_error = "no address";
  for (addrinfo* a = addrs; a; a = a->ai_next) {
    sock->Reset(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (sock->fd() < 0) {
      last_error = std::strerror(errno);
      all_refused = false;
      continue;
    }
    int err = 0;
    if (::connect(sock->fd(), a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        if (!WaitFor(sock->fd(), POLLOUT, connect_deadline)) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          ::getsockopt(sock->fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0) {
      ::freeaddrinfo(addrs);
      int one = 1;
      ::setsockopt(sock->fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return true;
    }
    last_error = err == ETIMEDOUT ? "connection timed out" : std::strerror(err);
    if (err != ECONNREFUSED) all_refused = false;
  }
  ::freeaddrinfo(addrs);
  sock->Reset(-1);
  reply->error = "could not connect to " + t.host_header + ": " + last_error;
  reply->unreachable = all_refused;
  return false;
}

bool SendAll(int fd, const std::string& data, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, deadline)) return false;
    } else {
      return false;
    }
  }
  return true;
}

HttpReply PlainRequest(const HttpCall& call, const PlainTarget& t) {
  HttpReply reply;
  auto deadline = Clock::now() + std::chrono::milliseconds(call.timeout_ms);
  Socket sock;
  if (!Connect(t, call.connect_timeout_ms, deadline, &sock, &reply)) return reply;

  std::string request = call.method + " " + t.path + " HTTP/1.1\r\nHost: " + t.host_header +
                        "\r\nUser-Agent: devstream/" DEVSTREAM_VERSION "\r\nConnection: close\r\n";
  bool has_accept = false;
  for (const auto& h : call.headers) {
    request += h + "\r\n";
    has_accept = has_accept || Lower(h.substr(0, 7)) == "accept:";
  }
  if (!has_accept) request += "Accept: */*\r\n";
  if (call.method == "POST")
    request += "Content-Length: " + std::to_string(call.body.size()) + "\r\n";
  request += "\r\n";
  if (call.method == "POST") request += call.body;
  if (!SendAll(sock.fd(), request, deadline)) {
    reply.error = RemainingMs(deadline) == 0 ? "timed out sending the request"
                                             : std::string("send failed: ") + std::strerror(errno);
    return reply;
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(call.max_reply_bytes);
  parser.header_limit(1u << 20);
  std::string pending;
  char buf[64 * 1024];
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    // Feed what has arrived; Beast consumes whole header blocks and chunks.
    while (!pending.empty() && !parser.is_done()) {
      size_t used = parser.put(boost::asio::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec) {
        reply.error = "malformed reply: " + ec.message();
        return reply;
      }
      if (used == 0) break;
    }
    if (parser.is_done()) break;
    ssize_t n = ::recv(sock.fd(), buf, sizeof(buf), 0);
    if (n > 0) {
      pending.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      parser.put_eof(ec);
      if (ec) {
        reply.error = "connection closed before the reply was complete";
        return reply;
      }
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFor(sock.fd(), POLLIN, deadline)) {
        reply.error = "timed out after " + std::to_string(call.timeout_ms) + " ms";
        return reply;
      }
    } else {
      reply.error = std::string("receive failed: ") + std::strerror(errno);
      return reply;
    }
  }
  auto& message = parser.get();
  reply.status = message.result_int();
  for (const auto& field : message) {
    reply.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
  }
  if (auto it = reply.headers.find("content-type"); it != reply.headers.end()) {
    reply.content_type = it->second;
  }
  reply.body = std::move(message.body());
  return reply;
}

// ---- https:// and proxies through libcurl, loaded on first use --------------

struct CurlApi {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
  std::string load_error;  // "" when every symbol resolved
};

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(::dlsym(lib, name));
  return *out != nullptr;
}

const CurlApi& Curl() {
  static CurlApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      api.load_error = std::string("HTTPS and proxies need libcurl (libcurl.so.4): ") + ::dlerror();
      return;
    }
    bool ok = Resolve(lib, "curl_global_init", &api.global_init) &&
              Resolve(lib, "curl_easy_init", &api.easy_init) &&
              Resolve(lib, "curl_easy_setopt", &api.easy_setopt) &&
              Resolve(lib, "curl_easy_perform", &api.easy_perform) &&
              Resolve(lib, "curl_easy_getinfo", &api.easy_getinfo) &&
              Resolve(lib, "curl_easy_strerror", &api.easy_strerror) &&
              Resolve(lib, "curl_easy_cleanup", &api.easy_cleanup) &&
              Resolve(lib, "curl_slist_append", &api.slist_append) &&
              Resolve(lib, "curl_slist_free_all", &api.slist_free_all);
    if (!ok) {
      api.load_error = "libcurl.so.4 lacks a symbol DevStream needs";
      return;
    }
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      api.load_error = "curl_global_init failed";
  });
  return api;
}

struct Sink {
  std::string* body;
  size_t max;
};

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  if (sink->body->size() + size * n > sink->max) return 0;  // aborts the transfer
  sink->body->append(data, size * n);
  return size * n;
}

size_t CaptureHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(user))[Lower(line.substr(0, colon))] = value;
  }
  return size * n;
}

HttpReply CurlRequest(const HttpCall& call) {
  HttpReply reply;
  const CurlApi& c = Curl();
  if (!c.load_error.empty()) {
    reply.error = c.load_error;
    return reply;
  }
  CURL* curl = c.easy_init();
  if (!curl) {
    reply.error = "curl_easy_init failed";
    return reply;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : call.headers) headers = c.slist_append(headers, h.c_str());
  Sink sink{&reply.body, call.max_reply_bytes};
  c.easy_setopt(curl, CURLOPT_URL, call.url.c_str());
  if (headers) c.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (call.method == "POST") {
    c.easy_setopt(curl, CURLOPT_POSTFIELDS, call.body.data());
    c.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  }
  c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, call.connect_timeout_ms);
  c.easy_setopt(curl, CURLOPT_TIMEOUT_MS, call.timeout_ms);
  c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  c.easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  c.easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  c.easy_setopt(curl, CURLOPT_HEADERFUNCTION, CaptureHeader);
  c.easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  c.easy_setopt(curl, CURLOPT_USERAGENT, "devstream/" DEVSTREAM_VERSION);
  CURLcode rc = c.easy_perform(curl);
  if (rc != CURLE_OK) {
    reply.error = c.easy_strerror(rc);
    reply.unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
  } else {
    c.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    char* ct = nullptr;
    c.easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) reply.content_type = ct;
  }
  c.slist_free_all(headers);
  c.easy_cleanup(curl);
  return reply;
}

}  // namespace

HttpReply HttpRequest(const HttpCall& call) {
  // Loopback never goes through a proxy (the hook and MCP relays talk to a
  // local server); other plain URLs do when one is configured.
  if (auto target = ParsePlainUrl(call.url)) {
    if (IsLoopbackHost(target->host) || !ProxyConfigured()) return PlainRequest(call, *target);
  }
  return CurlRequest(call);
}

}  // namespace ds
