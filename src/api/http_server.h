// HttpServer is an asynchronous HTTP/1.1 server (Boost.Beast) that turns each
// request into an api::Request, runs it through a Router and writes the
// api::Response back, with keep-alive. One io_context runs on `threads`
// threads; handlers run synchronously on those threads.
// Guarantees: every response carries Server, X-Request-Id and Content-Length
// (except 1xx/204/304, where HTTP forbids a body length); malformed HTTP gets
// a 400, a body over body_limit a 413, headers over header_limit a 431 (all
// problem+json, then the connection is closed); headers must arrive within
// idle_timeout_s, a body and the write of a response within
// request_timeout_s; connections beyond max_connections get a 503 and are closed.
// Thread-safety: Start/Stop/Wait/port may be called from any thread, but never
// Stop() from inside a handler (it joins the handler threads). The Router must
// outlive the server and must not change while it runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/http.h"
#include "api/router.h"
#include "core/status.h"

namespace ds::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0 = ephemeral; see HttpServer::port()
  int threads = 2;
  size_t body_limit = 1 << 20;      // larger body -> 413, then close
  size_t header_limit = 16 * 1024;  // larger header block -> 431, then close
  int request_timeout_s = 120;      // body read and response write deadline
  int idle_timeout_s = 30;          // keep-alive idle, and the whole header (slowloris)
  int max_connections = 1000;       // beyond this: 503 and close
  int drain_timeout_s = 5;          // Stop(): how long in-flight requests may still take
  // Access-log hook, called on an io thread after each response is written
  // (also for 400/413/431 answers). May be empty. Must not throw.
  std::function<void(const Request&, const Response&, double duration_ms)> on_complete;
};

class HttpServer {
 public:
  HttpServer(ServerOptions opts, const Router& router);
  ~HttpServer();  // Stop()s if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads. An error Status (Unavailable) when
  // the address cannot be resolved or bound; Start() may be called only once.
  ds::Status Start();
  // The bound port (useful with port 0); 0 before a successful Start().
  uint16_t port() const;
  // Graceful: stops accepting, closes idle keep-alive connections, lets
  // in-flight requests finish (their connections close after the response),
  // force-closes whatever is left after drain_timeout_s, and joins the threads.
  // Idempotent; safe to call concurrently with Wait().
  void Stop();
  // Blocks until Stop() has finished (returns at once if never started).
  void Wait();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::api
