#include "app/serve.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "api/engine_routes.h"
#include "api/hook_routes.h"
#include "api/http_server.h"
#include "api/memory_routes.h"
#include "api/rest_api.h"
#include "app/mcp_command.h"
#include "app/services.h"
#include "core/clock.h"
#include "engine/job_handlers.h"
#include "engine/scheduler.h"
#include "engine/worker.h"
#include "mcp/devstream_tools.h"
#include "mcp/http_transport.h"

namespace ds::app {
namespace {

int Error(const Status& st) {
  std::cerr << "devstream: error: " << st.message() << "\n";
  return st.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

Result<int64_t> EnvMillis(const char* name, int64_t def, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  int64_t out = 0;
  std::string_view s(v);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || p != s.data() + s.size() || out < lo || out > hi) {
    return Status::InvalidArgument(std::string(name) + "=" + v + " is not an integer in " +
                                   std::to_string(lo) + ".." + std::to_string(hi) + " (ms)");
  }
  return out;
}

// Worker timing from DEVSTREAM_JOB_LEASE_MS, DEVSTREAM_WORKER_POLL_MS,
// DEVSTREAM_WORKER_HEARTBEAT_MS (at most 5 s: /health counts a worker gone
// after 15 s of silence), DEVSTREAM_JOB_BACKOFF_MS (base of the exponential
// backoff); the defaults suit production.
Status WorkerTimingFromEnv(engine::WorkerOptions* w, engine::Backoff* b) {
  DS_ASSIGN_OR_RETURN(w->lease_ms, EnvMillis("DEVSTREAM_JOB_LEASE_MS", 60'000, 1'000, 86'400'000));
  DS_ASSIGN_OR_RETURN(w->poll_ms, EnvMillis("DEVSTREAM_WORKER_POLL_MS", 250, 10, 60'000));
  DS_ASSIGN_OR_RETURN(w->heartbeat_ms,
                      EnvMillis("DEVSTREAM_WORKER_HEARTBEAT_MS", 5'000, 100, 5'000));
  DS_ASSIGN_OR_RETURN(b->base_ms, EnvMillis("DEVSTREAM_JOB_BACKOFF_MS", 1'000, 0, 3'600'000));
  if (w->heartbeat_ms * 2 > w->lease_ms) {
    return Status::InvalidArgument(
        "DEVSTREAM_WORKER_HEARTBEAT_MS must be at most half of DEVSTREAM_JOB_LEASE_MS, or a "
        "running job's lease can expire between heartbeats");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> ResolveServiceMode(const std::string& flag) {
  std::string mode = flag;
  if (mode.empty()) {
    const char* env = std::getenv("DEVSTREAM_SERVICE_MODE");
    mode = env && *env ? env : "all";
  }
  if (mode != "api" && mode != "task_engine" && mode != "all") {
    return Status::InvalidArgument("service mode \"" + mode +
                                   "\" is not one of api, task_engine, all "
                                   "(--mode or DEVSTREAM_SERVICE_MODE)");
  }
  return mode;
}

int RunServe(const ServeOptions& opts) {
  // Block the shutdown signals before any thread starts so that only the
  // sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto mode = ResolveServiceMode(opts.mode);
  if (!mode.ok()) return Error(mode.status());
  bool http = *mode != "task_engine";
  bool work = *mode != "api";

  engine::WorkerOptions worker_options;
  worker_options.mode = *mode;
  engine::Backoff backoff;
  if (Status st = WorkerTimingFromEnv(&worker_options, &backoff); !st.ok()) return Error(st);
  const char* schedule_env = std::getenv("DEVSTREAM_SCHEDULE");
  auto schedules = engine::DefaultSchedules(schedule_env ? schedule_env : "");
  if (!schedules.ok()) return Error(schedules.status());

  auto opened = OpenServices(opts.db_path, opts.reader_pool);
  if (!opened.ok()) return Error(opened.status());
  Services& sv = **opened;
  auto settings = engine::EngineSettingsFromEnv(sv.db->path());
  if (!settings.ok()) return Error(settings.status());
  engine::JobQueue queue(*sv.db, backoff);

  if (http) {
    if (Status loaded = sv.memory->LoadIndex(); !loaded.ok()) {
      std::cerr << "devstream: error: loading the vector index: " << loaded.message() << "\n";
      return 1;
    }
  }
  std::cerr << "devstream: mode " << *mode << ", memory model " << sv.embedder->model() << " ("
            << sv.embedder->dim() << " dims)\n";
  // Memories without a vector for this model (a model change, or writes
  // while the embedder was down) are embedded by the worker; until a
  // partition is covered, search answers from the previous model.
  if (!http || sv.memory->MissingVectors() > 0) {
    engine::EnqueueOptions o;
    o.dedup_key = "reembed_all";
    if (auto r = queue.Enqueue("reembed_all", json::object{}, o); !r.ok()) {
      std::cerr << "devstream: warning: queueing reembed_all: " << r.status().message() << "\n";
    } else if (http) {
      std::cerr << "devstream: " << sv.memory->MissingVectors() << " memories lack "
                << sv.embedder->model() << " vectors; queued reembed_all\n";
    }
  }

  // Writes by other processes (CLI, hooks, other replicas) reach this index
  // within half a second even when nobody searches meanwhile.
  std::atomic<bool> stopping{false};
  std::thread index_sync;
  if (http) {
    index_sync = std::thread([&] {
      auto last_prune = std::chrono::steady_clock::now();
      while (!stopping) {
        if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(10)) {
          last_prune = std::chrono::steady_clock::now();
          if (auto pruned = sv.memory->PruneChangeLog(); !pruned.ok()) {
            std::cerr << "devstream: warning: change-log prune: " << pruned.status().message()
                      << "\n";
          }
        }
        for (int i = 0; i < 5 && !stopping; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (Status st = sv.memory->SyncIndex(); !st.ok() && !stopping) {
          std::cerr << "devstream: warning: index sync: " << st.message() << "\n";
        }
      }
    });
  }

  engine::EngineServices engine_services{*sv.db, queue, *sv.workflow, *sv.sessions, *settings};
  engine::Worker worker(*sv.db, queue, worker_options);
  engine::Scheduler scheduler(*sv.db, *schedules);
  engine::RegisterJobHandlers(worker, engine_services);
  worker.AttachScheduler(&scheduler);

  api::Router router;
  api::RestContext rest{*sv.db, *sv.tasks, *sv.workflow, NowTimestamp()};
  api::EngineContext engine_ctx{*sv.workflow, queue, *sv.sessions, engine::StandardJobKinds()};
  api::RegisterRestRoutes(router, rest);
  api::RegisterMemoryRoutes(router, *sv.memory);
  api::RegisterEngineRoutes(router, engine_ctx);
  hooks::HookHandler hook_handler(hooks::HookServices{*sv.tasks, *sv.memory, *sv.sessions, *sv.db});
  api::RegisterHookRoutes(router, hook_handler);
  mcp::ToolServices tool_services{*sv.tasks, *sv.memory, *sv.workflow};
  mcp::ToolRegistry tools = mcp::DevStreamTools(tool_services);
  mcp::ServerInfo mcp_info;
  mcp_info.version = DEVSTREAM_VERSION;
  mcp_info.instructions = McpInstructions();
  mcp::McpServer mcp_server(tools, mcp_info);
  mcp::HttpTransport mcp_http(mcp_server, {mcp::AllowedOriginsFromEnv()});
  mcp_http.Register(router);
  api::ServerOptions sopts;
  sopts.host = opts.host;
  sopts.port = opts.port;
  sopts.threads = opts.threads;
  sopts.body_limit = opts.body_limit;
  api::HttpServer server(sopts, router);

  auto stop_threads = [&] {
    stopping = true;
    if (index_sync.joinable()) index_sync.join();
  };
  if (work) {
    if (Status st = worker.Start(); !st.ok()) {
      stop_threads();
      return Error(st);
    }
  }
  if (http) {
    if (Status st = server.Start(); !st.ok()) {
      worker.Stop();
      stop_threads();
      return Error(st);
    }
    std::string host = opts.host.find(':') != std::string::npos ? "[" + opts.host + "]" : opts.host;
    std::cout << "DevStream listening on http://" << host << ":" << server.port() << " (database "
              << sv.db->path() << ", mode " << *mode << ")" << std::endl;
  } else {
    std::cout << "DevStream worker " << worker.id() << " running (database " << sv.db->path() << ")"
              << std::endl;
  }

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "devstream: received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", draining\n";
  if (http) server.Stop();
  worker.Stop();
  stop_threads();
  if (http) {
    if (Status saved = sv.memory->SaveSidecars(); !saved.ok()) {
      std::cerr << "devstream: warning: " << saved.message() << "\n";
    }
  }
  sv.db->WithWriter([](Connection& c) { return c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); }).ok();
  return 0;
}

}  // namespace ds::app
