// HttpRequest's plain http:// path against a loopback socket that answers
// each connection with canned bytes: framing (Content-Length, chunked, until
// close), headers, limits, timeouts, refused connections, and what it sends.
#include "core/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace ds {
namespace {

// Accepts one connection, reads the request head (and a body of the length
// it declares), records it, then writes `reply` (after `delay_ms`) and closes.
class CannedServer {
 public:
  explicit CannedServer(std::string reply, int delay_ms = 0)
      : reply_(std::move(reply)), delay_ms_(delay_ms) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path = "/x") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string request() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_;
  }

 private:
  void Serve() {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string got;
    char buf[4096];
    for (;;) {
      size_t head = got.find("\r\n\r\n");
      if (head != std::string::npos) {
        size_t cl = got.find("Content-Length: ");
        size_t body =
            cl == std::string::npos ? 0 : std::strtoul(got.c_str() + cl + 16, nullptr, 10);
        if (got.size() >= head + 4 + body) break;
      }
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      request_ = got;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    ::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  std::string reply_;
  int delay_ms_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string request_;
};

TEST(HttpClientTest, ReadsContentLengthReplyAndHeaders) {
  CannedServer s(
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Thing: a b \r\n"
      "Content-Length: 11\r\n\r\n{\"ok\":true}TRAILING-GARBAGE");
  HttpCall call;
  call.method = "POST";
  call.url = s.url("/api/v1/hooks/Stop?x=1");
  call.body = "{\"a\":1}";
  call.headers = {"Content-Type: application/json", "Authorization: Bearer k"};
  HttpReply r = HttpRequest(call);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{\"ok\":true}");
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.headers["x-thing"], "a b");
  std::string req = s.request();
  EXPECT_EQ(req.rfind("POST /api/v1/hooks/Stop?x=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nContent-Length: 7\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nAuthorization: Bearer k\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nAccept: */*\r\n"), std::string::npos) << req;
  EXPECT_EQ(req.substr(req.size() - 7), "{\"a\":1}");
}

TEST(HttpClientTest, CallersAcceptReplacesTheDefault) {
  CannedServer s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  HttpCall call;
  call.url = s.url();
  call.headers = {"Accept: text/event-stream"};
  EXPECT_EQ(HttpRequest(call).status, 200);
  std::string req = s.request();
  EXPECT_EQ(req.find("*/*"), std::string::npos) << req;
  EXPECT_NE(req.find("Accept: text/event-stream"), std::string::npos) << req;
}

TEST(HttpClientTest, ReadsChunkedAndUntilCloseBodies) {
  {
    CannedServer s(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\ndata: \r\n3\r\n{}\n\r\n0\r\n\r\n");
    HttpCall call;
    call.url = s.url();
    HttpReply r = HttpRequest(call);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "data: {}\n");
    EXPECT_EQ(r.content_type, "text/event-stream");
  }
  {
    CannedServer s("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
    HttpCall call;
    call.url = s.url();
    HttpReply r = HttpRequest(call);
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.body, "until the end");
  }
}

TEST(HttpClientTest, FailsOnTruncatedOversizedAndMalformedReplies) {
  {
    CannedServer s("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    HttpCall call;
    call.url = s.url();
    HttpReply r = HttpRequest(call);
    EXPECT_NE(r.error, "");
    EXPECT_FALSE(r.unreachable);
  }
  {
    CannedServer s("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
    HttpCall call;
    call.url = s.url();
    call.max_reply_bytes = 4;
    EXPECT_NE(HttpRequest(call).error, "");
  }
  {
    CannedServer s("SSH-2.0-OpenSSH_9.2\r\n");
    HttpCall call;
    call.url = s.url();
    HttpReply r = HttpRequest(call);
    EXPECT_NE(r.error, "");
    EXPECT_EQ(r.status, 0);
  }
}

TEST(HttpClientTest, TimesOutOnASilentServer) {
  CannedServer s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", /*delay_ms=*/1500);
  HttpCall call;
  call.url = s.url();
  call.timeout_ms = 150;
  auto start = std::chrono::steady_clock::now();
  HttpReply r = HttpRequest(call);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
  EXPECT_FALSE(r.unreachable);
  EXPECT_LT(took, std::chrono::milliseconds(1400));
}

TEST(HttpClientTest, RefusedAndUnresolvableAreUnreachable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);  // bound, never listened, closed: nothing accepts on it
  HttpCall call;
  call.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  HttpReply r = HttpRequest(call);
  EXPECT_TRUE(r.unreachable) << r.error;
  EXPECT_NE(r.error, "");

  call.url = "http://no-such-host.invalid/";
  r = HttpRequest(call);
  EXPECT_TRUE(r.unreachable) << r.error;
}

TEST(HttpClientTest, AcceptsIpv6LiteralsAndBareAuthorities) {
  CannedServer s("HTTP/1.1 204 No Content\r\n\r\n");
  HttpCall call;
  call.url = s.url("");  // no path: "/" is requested
  EXPECT_EQ(HttpRequest(call).status, 204);
  EXPECT_EQ(s.request().rfind("GET / HTTP/1.1\r\n", 0), 0u) << s.request();

  call.url = "http://[::1:0/";  // unterminated literal: not a plain URL, left to libcurl
  EXPECT_NE(HttpRequest(call).error, "");
}

}  // namespace
}  // namespace ds
