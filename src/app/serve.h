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

#include "app/settings.h"

namespace ds::app {

// Returns the process exit code. `settings.service_mode` picks the mode.
int RunServe(const Settings& settings);

}  // namespace ds::app
