// `devstream serve`: opens (and migrates) the database, wires TaskService into
// the REST routes and runs the HTTP server until SIGINT/SIGTERM, then drains
// in-flight requests. Prints "DevStream listening on http://HOST:PORT" once
// ready (with the real port when --port 0 asked for an ephemeral one).
#pragma once

#include <cstdint>
#include <string>

namespace ds::app {

struct ServeOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string db_path;
  int threads = 4;
  int reader_pool = 10;
  size_t body_limit = 1 << 20;
};

// Returns the process exit code.
int RunServe(const ServeOptions& opts);

}  // namespace ds::app
