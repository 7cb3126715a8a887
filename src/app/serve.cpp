#include "app/serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
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
#include "app/store_open.h"
#include "core/clock.h"
#include "engine/job_handlers.h"
#include "engine/scheduler.h"
#include "engine/worker.h"
#include "mcp/devstream_tools.h"
#include "mcp/http_transport.h"
#include "store/migrations.h"

namespace ds::app {
namespace {

int Error(const Status& st) {
  std::cerr << "devstream: error: " << st.message() << "\n";
  return st.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunServe(const Settings& settings) {
  // Block the shutdown signals before any thread starts so that only the
  // sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string& mode = settings.service_mode;
  bool http = mode != "task_engine";
  bool work = mode != "api";
  spdlog::set_level(spdlog::level::from_str(settings.log_level));

  // Production never migrates on start, and refuses unsafe settings.
  {
    auto raw = OpenDatabase(settings.database_path, 1);
    if (!raw.ok()) return Error(raw.status());
    auto pending = Migrator(**raw).Pending();
    if (!pending.ok()) return Error(pending.status());
    auto refusals = ProductionRefusals(settings, *pending);
    if (!refusals.empty()) {
      for (const auto& r : refusals) std::cerr << "devstream: refusing to start: " << r << "\n";
      return 1;
    }
  }
  for (const auto& name : settings.config.UnknownEnvironment(ClientEnvironmentVariables())) {
    std::cerr << "devstream: warning: " << name
              << " is set but no setting reads it (see devstream config show)\n";
  }

  auto opened = OpenServices(settings);
  if (!opened.ok()) return Error(opened.status());
  Services& sv = **opened;
  engine::JobQueue& queue = *sv.jobs;

  if (http) {
    if (Status loaded = sv.memory->LoadIndex(); !loaded.ok()) {
      std::cerr << "devstream: error: loading the vector index: " << loaded.message() << "\n";
      return 1;
    }
  }
  std::cerr << "devstream: mode " << mode << " (" << settings.environment
            << (settings.config_file.empty() ? "" : ", " + settings.config_file)
            << "), memory model " << sv.embedder->model() << " (" << sv.embedder->dim()
            << " dims)\n";
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

  engine::EngineServices engine_services{*sv.db, queue, *sv.workflow, *sv.sessions,
                                         settings.engine};
  engine::Worker worker(*sv.db, queue, settings.worker);
  engine::Scheduler scheduler(*sv.db, settings.schedules);
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
  mcp::HttpTransport mcp_http(mcp_server, {settings.mcp_allowed_origins});
  mcp_http.Register(router);
  api::ServerOptions sopts;
  sopts.host = settings.host;
  sopts.port = settings.port;
  sopts.threads = settings.threads;
  sopts.body_limit = settings.body_limit;
  sopts.header_limit = settings.header_limit;
  sopts.request_timeout_s = settings.request_timeout_s;
  sopts.idle_timeout_s = settings.idle_timeout_s;
  sopts.max_connections = settings.max_connections;
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
    std::string host =
        settings.host.find(':') != std::string::npos ? "[" + settings.host + "]" : settings.host;
    std::cout << "DevStream listening on http://" << host << ":" << server.port() << " (database "
              << sv.db->path() << ", mode " << mode << ")" << std::endl;
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
