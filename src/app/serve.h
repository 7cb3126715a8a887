// `devstream serve` and `devstream worker`: one process in a service mode
// (DESIGN.md §6) on a migrated database.
//   api          the HTTP server only
//   task_engine  the job worker (with the scheduler) only; `devstream worker`
//   all          both: the development default, so `make run` needs nothing else
// HTTP modes print "DevStream listening on http://HOST:PORT" once ready (with
// the real port when --port 0 asked for an ephemeral one); task_engine prints
// "DevStream worker <id> running". SIGINT/SIGTERM drain: in-flight requests
// finish, the running job finishes or is given back, then the WAL is
// checkpointed.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace ds::app {

struct ServeOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string db_path;
  std::string mode;  // api | task_engine | all; empty: $DEVSTREAM_SERVICE_MODE, else all
  int threads = 4;
  int reader_pool = 10;
  size_t body_limit = 1 << 20;
};

// The effective mode (flag, else environment, else "all"), validated.
Result<std::string> ResolveServiceMode(const std::string& flag);

// Returns the process exit code.
int RunServe(const ServeOptions& opts);

}  // namespace ds::app
