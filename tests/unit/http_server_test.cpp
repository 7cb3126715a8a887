// Tests for the generic HTTP layer: request helpers, Router and HttpServer.
// The server tests talk raw HTTP/1.1 over POSIX sockets so that malformed and
// oversized requests can be sent exactly as written.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/http.h"
#include "api/http_server.h"
#include "api/router.h"

namespace ds::api {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// A minimal blocking HTTP/1.1 client over a raw socket.

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string H(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool Has(const std::string& name) const { return headers.count(name) > 0; }
  json::value Json() const { return json::parse(body); }
};

// The string in a JSON value, or a marker that cannot equal a real value.
std::string Str(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : "<not a string: " + json::serialize(v) + ">";
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one final response (skipping 1xx). nullopt on EOF, error or timeout.
  std::optional<RawResponse> Read(bool head_request = false,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      size_t end;
      while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
        if (!Fill(deadline)) return std::nullopt;
      }
      RawResponse r;
      std::string head = buf_.substr(0, end);
      buf_.erase(0, end + 4);
      size_t line_end = head.find("\r\n");
      std::string status_line = head.substr(0, line_end);
      if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return std::nullopt;
      r.status = std::stoi(status_line.substr(9, 3));
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t next = head.find("\r\n", pos);
        if (next == std::string::npos) next = head.size();
        std::string line = head.substr(pos, next - pos);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          r.headers[Lower(line.substr(0, colon))] = value;
        }
        pos = next + 2;
      }
      if (r.status / 100 == 1) continue;  // interim response
      size_t len = r.Has("content-length") ? std::stoul(r.H("content-length")) : 0;
      if (head_request || r.status == 204 || r.status == 304) len = 0;
      while (buf_.size() < len) {
        if (!Fill(deadline)) return std::nullopt;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
      return r;
    }
  }

  // True when the server closes the connection (EOF or reset) within `timeout`.
  bool ClosedByPeer(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) return true;
    }
  }

 private:
  bool Fill(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[8192];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

// ---------------------------------------------------------------------------
// Helpers without a server.

TEST(HttpHelpersTest, ParseTargetDecodesPathAndQuery) {
  Request req;
  req.target = "/a%20b/c?x=1+2&y=%26%3D&x=3&flag&&z=";
  ASSERT_TRUE(ParseTarget(req).ok());
  EXPECT_EQ(req.path, "/a b/c");
  EXPECT_EQ(req.Query("x"), "1 2");  // first value
  EXPECT_EQ(req.query.count("x"), 2u);
  EXPECT_EQ(req.Query("y"), "&=");
  EXPECT_EQ(req.Query("flag"), "");
  EXPECT_EQ(req.Query("z"), "");
  EXPECT_EQ(req.Query("missing"), std::nullopt);

  req.target = "http://example.com:8000/p%2Bq?k=v";
  ASSERT_TRUE(ParseTarget(req).ok());
  EXPECT_EQ(req.path, "/p+q");  // '+' is literal in a path
  EXPECT_EQ(req.Query("k"), "v");

  for (const char* bad : {"/a%2", "/a%zz", "/a%00", "nopath", "/ok?q=%g1"}) {
    req.target = bad;
    Status st = ParseTarget(req);
    EXPECT_EQ(st.code(), StatusCode::kMalformed) << bad;
  }
}

TEST(HttpHelpersTest, RequestIdSanity) {
  EXPECT_TRUE(IsSaneRequestId("abc-123.X_y"));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_FALSE(IsSaneRequestId("has space"));
  EXPECT_FALSE(IsSaneRequestId("new\nline"));
  EXPECT_TRUE(IsSaneRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsSaneRequestId(std::string(129, 'a')));
  std::string bad = "bad id";
  std::string generated = ChooseRequestId(&bad);
  EXPECT_EQ(generated.size(), 32u);
  EXPECT_TRUE(IsSaneRequestId(generated));
  EXPECT_NE(ChooseRequestId(nullptr), ChooseRequestId(nullptr));
}

// Generated ids come from per-thread buffers of random bytes (CorrelationId):
// none may repeat, across refills of one thread's buffer or between threads.
TEST(HttpHelpersTest, GeneratedRequestIdsDoNotRepeat) {
  std::vector<std::vector<std::string>> ids(4);
  std::vector<std::thread> threads;
  for (auto& mine : ids) {
    threads.emplace_back([&mine] {
      for (int i = 0; i < 1000; ++i) mine.push_back(ChooseRequestId(nullptr));
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& mine : ids) {
    for (const auto& id : mine) {
      EXPECT_EQ(id.size(), 32u);
      EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
      all.insert(id);
    }
  }
  EXPECT_EQ(all.size(), 4000u);
}

TEST(HttpHelpersTest, SendableHeadersAreTokenNamesWithSafeValues) {
  EXPECT_TRUE(IsSendableHeader("X-Thing", "a b; c=\"d\""));
  EXPECT_TRUE(IsSendableHeader("ETag", ""));
  EXPECT_FALSE(IsSendableHeader("", "v"));
  EXPECT_FALSE(IsSendableHeader("Bad Name", "v"));
  EXPECT_FALSE(IsSendableHeader("X:Y", "v"));
  EXPECT_FALSE(IsSendableHeader("X-Split", "a\r\nSet-Cookie: x=1"));
  EXPECT_FALSE(IsSendableHeader("X-Lf", "a\nb"));
  EXPECT_FALSE(IsSendableHeader("X-Nul", std::string_view("a\0b", 3)));
}

TEST(HttpHelpersTest, ProblemResponseShape) {
  Request req;
  req.path = "/api/v1/tasks/x";
  req.request_id = "rid-1";
  Status st = Status::Conflict("cannot start");
  st.WithDetail("allowed", json::array{"pending"}).WithDetail("status", "spoofed");
  Response res = ProblemResponse(st, req);
  EXPECT_EQ(res.status, 409);
  EXPECT_EQ(res.content_type, "application/problem+json");
  json::object o = json::parse(res.body).as_object();
  EXPECT_EQ(o.at("type"), "https://devstream.dev/problems/conflict");
  EXPECT_EQ(Str(o.at("title")), TitleFor(StatusCode::kConflict));
  EXPECT_EQ(o.at("status"), 409);  // details cannot override standard members
  EXPECT_EQ(o.at("detail"), "cannot start");
  EXPECT_EQ(o.at("instance"), "/api/v1/tasks/x");
  EXPECT_EQ(o.at("request_id"), "rid-1");
  EXPECT_EQ(o.at("allowed"), (json::array{"pending"}));

  Response internal = ProblemResponse(Status::Internal("boom"), req);
  EXPECT_EQ(internal.status, 500);
  EXPECT_EQ(json::parse(internal.body).at("type"), "about:blank");
}

TEST(RouterTest, LiteralBeatsParameterRegardlessOfOrder) {
  Router r;
  r.Add("GET", "/api/v1/tasks/{id}", [](Request& q) {
    return JsonResponse(200, json::object{{"route", "id"}, {"id", q.params.at("id")}});
  });
  r.Add("GET", "/api/v1/tasks/ready", [](Request&) {
    return JsonResponse(200, json::object{{"route", "ready"}});
  });
  r.Add("GET", "/api/v1/{kind}/ready", [](Request&) {
    return JsonResponse(200, json::object{{"route", "kind"}});
  });
  Request req;
  req.method = "GET";
  req.path = "/api/v1/tasks/ready";
  EXPECT_EQ(json::parse(r.Dispatch(req).body).at("route"), "ready");
  req.path = "/api/v1/tasks/tsk_1/";  // trailing slash ignored
  Response res = r.Dispatch(req);
  EXPECT_EQ(json::parse(res.body).at("route"), "id");
  EXPECT_EQ(json::parse(res.body).at("id"), "tsk_1");
  req.path = "/api/v1/plans/ready";
  EXPECT_EQ(json::parse(r.Dispatch(req).body).at("route"), "kind");
  req.path = "/api/v1/tasks//";  // a parameter never matches an empty segment
  EXPECT_EQ(r.Dispatch(req).status, 404);
}

TEST(RouterTest, MethodFallbacksAndErrors) {
  Router r;
  r.Add("GET", "/things", [](Request&) { return JsonResponse(200, json::object{{"m", "get"}}); });
  r.Add("POST", "/things", [](Request&) { return JsonResponse(201, json::object{}); });
  r.Add("GET", "/throws", [](Request&) -> Response { throw std::runtime_error("kaboom"); });
  Request req;
  req.request_id = "r";
  req.method = "HEAD";
  req.path = "/things";
  EXPECT_EQ(r.Dispatch(req).status, 200);  // HEAD falls back to GET
  req.method = "PUT";
  Response res = r.Dispatch(req);
  EXPECT_EQ(res.status, 405);
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0].first, "Allow");
  EXPECT_EQ(res.headers[0].second, "GET, HEAD, POST");
  req.method = "GET";
  req.path = "/throws";
  res = r.Dispatch(req);
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body.find("kaboom"), std::string::npos);  // no internals leak
}

// ---------------------------------------------------------------------------
// Server tests.

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("GET", "/api/v1/tasks/{id}/dependencies/{dep}", [](Request& req) {
      json::array tags;
      auto range = req.query.equal_range("tag");
      for (auto it = range.first; it != range.second; ++it) tags.emplace_back(it->second);
      return JsonResponse(200, json::object{{"id", req.params.at("id")},
                                            {"dep", req.params.at("dep")},
                                            {"q", req.Query("q").value_or("<none>")},
                                            {"tags", tags},
                                            {"path", req.path},
                                            {"request_id", req.request_id}});
    });
    router_.Add("GET", "/api/v1/tasks/{id}", [](Request& req) {
      return JsonResponse(200, json::object{{"route", "task"}, {"id", req.params.at("id")}});
    });
    router_.Add("PATCH", "/api/v1/tasks/{id}", [](Request&) {
      return JsonResponse(200, json::object{{"route", "patch"}});
    });
    router_.Add("GET", "/api/v1/tasks/ready", [](Request&) {
      return JsonResponse(200, json::object{{"route", "ready"}});
    });
    router_.Add("POST", "/echo", [](Request& req) {
      Response res;
      res.content_type = "text/plain";
      res.body = req.body;
      res.headers.emplace_back("X-Body-Size", std::to_string(req.body.size()));
      return res;
    });
    router_.Add("GET", "/slow", [this](Request&) {
      slow_entered_.set_value();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      return JsonResponse(200, json::object{{"slow", true}});
    });
    router_.Add("GET", "/throws", [](Request&) -> Response { throw std::runtime_error("x"); });
    router_.Add("DELETE", "/nocontent", [](Request&) {
      Response res;
      res.status = 204;
      return res;
    });
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(ServerOptions opts = {}) {
    opts.host = "127.0.0.1";
    opts.port = 0;
    server_ = std::make_unique<HttpServer>(std::move(opts), router_);
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_NE(server_->port(), 0);
  }

  // One request on a fresh connection.
  std::optional<RawResponse> RoundTrip(const std::string& raw, bool head = false) {
    Conn c(server_->port());
    if (!c.connected() || !c.Send(raw)) return std::nullopt;
    return c.Read(head);
  }

  static void ExpectProblem(const RawResponse& r, int status) {
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.H("content-type"), "application/problem+json");
    EXPECT_FALSE(r.H("x-request-id").empty());
    json::value v = r.Json();
    EXPECT_EQ(v.at("status"), status);
    EXPECT_EQ(Str(v.at("request_id")), r.H("x-request-id"));
    EXPECT_TRUE(v.as_object().contains("title"));
    EXPECT_TRUE(v.as_object().contains("type"));
  }

  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::promise<void> slow_entered_;
};

TEST_F(HttpServerTest, GetRouteWithPathParamsAndQueryDecoding) {
  StartServer();
  auto r = RoundTrip(Get("/api/v1/tasks/t%20x/dependencies/d1?q=a+b%26c&tag=1&tag=two%2F"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->H("content-type"), "application/json");
  EXPECT_EQ(r->H("server"), "devstream");
  EXPECT_EQ(r->H("content-length"), std::to_string(r->body.size()));
  json::value v = r->Json();
  EXPECT_EQ(v.at("id"), "t x");
  EXPECT_EQ(v.at("dep"), "d1");
  EXPECT_EQ(v.at("q"), "a b&c");
  EXPECT_EQ(v.at("tags"), (json::array{"1", "two/"}));
  EXPECT_EQ(v.at("path"), "/api/v1/tasks/t x/dependencies/d1");
}

TEST_F(HttpServerTest, LiteralSegmentBeatsParameter) {
  StartServer();
  auto ready = RoundTrip(Get("/api/v1/tasks/ready"));
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->Json().at("route"), "ready");
  auto task = RoundTrip(Get("/api/v1/tasks/tsk_42"));
  ASSERT_TRUE(task);
  EXPECT_EQ(task->Json().at("route"), "task");
  EXPECT_EQ(task->Json().at("id"), "tsk_42");
}

TEST_F(HttpServerTest, UnknownPathIs404Problem) {
  StartServer();
  auto r = RoundTrip(Get("/nope/at/all"));
  ASSERT_TRUE(r);
  ExpectProblem(*r, 404);
  EXPECT_EQ(r->Json().at("instance"), "/nope/at/all");
}

TEST_F(HttpServerTest, WrongMethodIs405ProblemWithAllow) {
  StartServer();
  auto r = RoundTrip("DELETE /api/v1/tasks/tsk_1 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(r);
  ExpectProblem(*r, 405);
  EXPECT_EQ(r->H("allow"), "GET, HEAD, PATCH");
}

TEST_F(HttpServerTest, RequestIdEchoedOrGenerated) {
  StartServer();
  auto echoed = RoundTrip(Get("/api/v1/tasks/a/dependencies/b", "X-Request-Id: client-id_1.2\r\n"));
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->H("x-request-id"), "client-id_1.2");
  EXPECT_EQ(echoed->Json().at("request_id"), "client-id_1.2");

  auto generated = RoundTrip(Get("/api/v1/tasks/a/dependencies/b"));
  ASSERT_TRUE(generated);
  std::string id = generated->H("x-request-id");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(Str(generated->Json().at("request_id")), id);

  auto insane = RoundTrip(Get("/nope", "X-Request-Id: " + std::string(200, 'a') + "\r\n"));
  ASSERT_TRUE(insane);
  EXPECT_EQ(insane->H("x-request-id").size(), 32u);
  EXPECT_NE(insane->H("x-request-id"), id);
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/one")));
  auto first = c.Read();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->Json().at("id"), "one");
  EXPECT_NE(Lower(first->H("connection")), "close");
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/two")));
  auto second = c.Read();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->Json().at("id"), "two");
  // Pipelined requests are answered in order too.
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/three") + Get("/api/v1/tasks/four")));
  auto third = c.Read();
  auto fourth = c.Read();
  ASSERT_TRUE(third && fourth);
  EXPECT_EQ(third->Json().at("id"), "three");
  EXPECT_EQ(fourth->Json().at("id"), "four");
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/x", "Connection: close\r\n")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Lower(r->H("connection")), "close");
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(3)));
}

TEST_F(HttpServerTest, BodyWithinLimitReachesHandler) {
  ServerOptions opts;
  opts.body_limit = 1024;
  StartServer(opts);
  std::string body(1024, 'b');
  auto r = RoundTrip("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" + body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->H("x-body-size"), "1024");
  EXPECT_EQ(r->body, body);
  // Chunked bodies are decoded.
  auto chunked = RoundTrip(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->body, "abcde");
}

TEST_F(HttpServerTest, OversizedBodyGets413) {
  ServerOptions opts;
  opts.body_limit = 1024;
  StartServer(opts);
  {  // A client that keeps uploading (more than socket buffers hold) while the
     // server answers must still receive the 413, not a connection reset.
    Conn c(server_->port());
    const size_t big = 8 << 20;
    std::thread uploader([&] {
      c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: up-1\r\nContent-Length: " +
             std::to_string(big) + "\r\n\r\n" + std::string(big, 'x'));
    });
    auto r = c.Read();
    uploader.join();
    ASSERT_TRUE(r);
    ExpectProblem(*r, 413);
    EXPECT_EQ(r->H("x-request-id"), "up-1");
    EXPECT_EQ(r->Json().at("instance"), "/echo");
    EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(5)));
  }
  {  // Expect: 100-continue: refused before the body is sent.
    Conn c(server_->port());
    ASSERT_TRUE(c.Send(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    ExpectProblem(*r, 413);
  }
  {  // Chunked body that grows past the limit.
    Conn c(server_->port());
    std::string chunk(1000, 'y');
    ASSERT_TRUE(
        c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3e8\r\n" +
               chunk + "\r\n3e8\r\n" + chunk + "\r\n0\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    ExpectProblem(*r, 413);
  }
}

TEST_F(HttpServerTest, GarbageRequestLineGets400AndClose) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ExpectProblem(*r, 400);
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(5)));
}

TEST_F(HttpServerTest, BadPercentEscapeGets400) {
  StartServer();
  auto r = RoundTrip(Get("/api/v1/tasks/%zz"));
  ASSERT_TRUE(r);
  ExpectProblem(*r, 400);
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  ServerOptions opts;
  opts.header_limit = 1024;
  StartServer(opts);
  auto r = RoundTrip(Get("/api/v1/tasks/x", "X-Big: " + std::string(4000, 'h') + "\r\n"));
  ASSERT_TRUE(r);
  ExpectProblem(*r, 431);
}

TEST_F(HttpServerTest, HandlerExceptionGives500AndConnectionSurvives) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send(Get("/throws")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ExpectProblem(*r, 500);
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/after")));
  auto next = c.Read();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST_F(HttpServerTest, HeadHasLengthButNoBodyAnd204HasNoLength) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send("HEAD /api/v1/tasks/x HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = c.Read(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  std::string expected = R"({"route":"task","id":"x"})";
  EXPECT_EQ(head->H("content-length"), std::to_string(expected.size()));
  // Had a body been sent, it would now be read as the next response's start.
  ASSERT_TRUE(c.Send("DELETE /nocontent HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto none = c.Read();
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 204);
  EXPECT_FALSE(none->Has("content-length"));
  EXPECT_FALSE(none->H("x-request-id").empty());
}

TEST_F(HttpServerTest, AccessLogHookSeesEveryResponse) {
  std::mutex mu;
  std::vector<std::pair<std::string, int>> seen;
  ServerOptions opts;
  opts.on_complete = [&](const Request& req, const Response& res, double ms) {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_GE(ms, 0.0);
    seen.emplace_back(req.method + " " + req.path, res.status);
  };
  StartServer(opts);
  ASSERT_TRUE(RoundTrip(Get("/api/v1/tasks/x")));
  ASSERT_TRUE(RoundTrip(Get("/missing")));
  ASSERT_TRUE(RoundTrip("BROKEN\r\n\r\n"));
  server_->Stop();  // hooks run after the write; Stop joins the threads
  std::lock_guard<std::mutex> lock(mu);
  // The hook runs after the write, so the order across connections may vary.
  std::sort(seen.begin(), seen.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<std::string, int>("GET /api/v1/tasks/x", 200)));
  EXPECT_EQ(seen[1].second, 400);
  EXPECT_EQ(seen[2], (std::pair<std::string, int>("GET /missing", 404)));
}

TEST_F(HttpServerTest, StopIsPromptWithIdleKeepAliveConnection) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send(Get("/api/v1/tasks/x")));
  ASSERT_TRUE(c.Read());  // connection is now idle, kept alive
  const auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(2)));
  Conn late(server_->port());
  EXPECT_FALSE(late.connected());  // no longer listening
  server_->Wait();                 // returns at once after Stop
}

TEST_F(HttpServerTest, StopLetsInFlightRequestFinish) {
  StartServer();
  Conn c(server_->port());
  ASSERT_TRUE(c.Send(Get("/slow")));
  ASSERT_EQ(slow_entered_.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  std::thread waiter([&] { server_->Wait(); });
  server_->Stop();
  waiter.join();
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Json().at("slow"), true);
  EXPECT_EQ(Lower(r->H("connection")), "close");
}

TEST_F(HttpServerTest, IdleConnectionTimesOut) {
  ServerOptions opts;
  opts.idle_timeout_s = 1;
  StartServer(opts);
  Conn c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /api/v1/tasks/x HTTP/1.1\r\n"));  // header never finished
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(4)));
}

TEST_F(HttpServerTest, StalledBodyTimesOutAfterTheRequestTimeout) {
  ServerOptions opts;
  opts.request_timeout_s = 1;
  opts.idle_timeout_s = 30;
  StartServer(opts);
  Conn c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"));
  EXPECT_FALSE(c.ClosedByPeer(std::chrono::milliseconds(300)));  // the body may still come
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(4)));
}

// The idle timeout counts from the last response, not from the connection's
// start: a connection that keeps asking stays open past it.
TEST_F(HttpServerTest, BusyKeepAliveConnectionOutlivesTheIdleTimeout) {
  ServerOptions opts;
  opts.idle_timeout_s = 1;
  StartServer(opts);
  Conn c(server_->port());
  ASSERT_TRUE(c.connected());
  const auto start = Clock::now();
  int answered = 0;
  while (Clock::now() - start < std::chrono::milliseconds(2500)) {
    ASSERT_TRUE(c.Send(Get("/api/v1/tasks/x")));
    auto r = c.Read();
    ASSERT_TRUE(r) << "no answer after " << answered << " requests";
    ++answered;
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  EXPECT_GE(answered, 5);
  EXPECT_TRUE(c.ClosedByPeer(std::chrono::seconds(4)));  // and idle, it is closed
}

TEST_F(HttpServerTest, ConnectionsBeyondLimitGet503) {
  ServerOptions opts;
  opts.max_connections = 1;
  StartServer(opts);
  Conn first(server_->port());
  ASSERT_TRUE(first.Send(Get("/api/v1/tasks/x")));
  ASSERT_TRUE(first.Read());  // the first connection is registered and idle
  Conn second(server_->port());
  ASSERT_TRUE(second.connected());
  auto r = second.Read();
  ASSERT_TRUE(r);
  ExpectProblem(*r, 503);
}

TEST_F(HttpServerTest, BindFailureIsAnError) {
  StartServer();
  ServerOptions opts;
  opts.port = server_->port();
  HttpServer clash(opts, router_);
  Status st = clash.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(std::to_string(server_->port())), std::string::npos);
}

}  // namespace
}  // namespace ds::api
