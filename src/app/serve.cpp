#include "app/serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "api/access.h"
#include "api/engine_routes.h"
#include "api/guard.h"
#include "api/health.h"
#include "api/hook_routes.h"
#include "api/http_server.h"
#include "api/memory_routes.h"
#include "api/metrics.h"
#include "api/rest_api.h"
#include "app/mcp_command.h"
#include "app/services.h"
#include "app/store_open.h"
#include "core/clock.h"
#include "core/log.h"
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
  if (Status st = ConfigureLogging(settings.log); !st.ok()) return Error(st);

  // Production never migrates on start, and refuses unsafe settings.
  {
    auto pending = PendingMigrations(settings.database_path);  // creates no file
    if (!pending.ok()) return Error(pending.status());
    auto refusals = ProductionRefusals(settings, *pending);
    if (!refusals.empty()) {
      for (const auto& r : refusals) LogError("refusing to start: " + r);
      return 1;
    }
  }
  for (const auto& name : settings.config.UnknownEnvironment(ClientEnvironmentVariables())) {
    LogWarn(name + " is set but no setting reads it (see devstream config show)");
  }

  auto opened = OpenServices(settings);
  if (!opened.ok()) return Error(opened.status());
  Services& sv = **opened;
  engine::JobQueue& queue = *sv.jobs;
  // Request and worker threads read concurrently from here on.
  if (Status anchored = sv.db->AnchorReads(); !anchored.ok()) {
    LogWarn("reads run without the WAL read-lock anchor", {{"error", anchored.message()}});
  }

  if (http) {
    auto load_start = std::chrono::steady_clock::now();
    if (Status loaded = sv.memory->LoadIndex(memory::MemoryService::Indexes::kVectorsAndKeywords);
        !loaded.ok()) {
      LogError("loading the search indexes failed", {{"error", loaded.message()}});
      return 1;
    }
    const memory::KeywordIndex& keywords = *sv.memory->keyword_index();
    LogInfo("search indexes loaded",
            {{"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - load_start)
                        .count()},
             {"keyword_documents", static_cast<int64_t>(keywords.Size())},
             {"keyword_index_bytes", static_cast<int64_t>(keywords.MemoryBytes())}});
  }
  LogInfo("starting", {{"mode", mode},
                       {"environment", settings.environment},
                       {"config_file", settings.config_file},
                       {"database", sv.db->path()},
                       {"memory_model", sv.embedder->model()},
                       {"dim", sv.embedder->dim()},
                       {"version", DEVSTREAM_VERSION}});
  // Memories without a vector for this model (a model change, or writes
  // while the embedder was down) are embedded by the worker; until a
  // partition is covered, search answers from the previous model.
  if (!http || sv.memory->MissingVectors() > 0) {
    engine::EnqueueOptions o;
    o.dedup_key = "reembed_all";
    if (auto r = queue.Enqueue("reembed_all", json::object{}, o); !r.ok()) {
      LogWarn("queueing reembed_all failed", {{"error", r.status().message()}});
    } else if (http) {
      LogInfo("memories lack vectors of the current model; queued reembed_all",
              {{"missing", sv.memory->MissingVectors()}, {"model", sv.embedder->model()}});
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
            LogWarn("change-log prune failed", {{"error", pruned.status().message()}});
          }
        }
        for (int i = 0; i < 5 && !stopping; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (Status st = sv.memory->SyncIndex(); !st.ok() && !stopping) {
          LogWarn("index sync failed", {{"error", st.message()}});
        }
        if (Status st = sv.memory->FlushAccessCounts(); !st.ok() && !stopping) {
          LogWarn("writing access counts failed", {{"error", st.message()}});
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
  api::HealthCheck health(*sv.db, *sv.embedder);
  if (http) health.SetReady();  // the index was loaded above
  api::RegisterHealthRoutes(router, health);
  api::Metrics metrics(*sv.db);
  sv.memory->SetSearchListener(
      [&metrics](const memory::SearchResult& r) { metrics.ObserveSearch(r); });
  api::RegisterMetricsRoute(router, metrics, settings.metrics_allowed);
  api::AccessControl access(*sv.db);
  api::AccessControl* auth = settings.auth_enabled ? &access : nullptr;
  api::RequestGuard guard(settings.guard, auth);
  router.SetGate(&guard);
  if (http && !settings.auth_enabled && ListensBeyondLoopback(settings)) {
    LogWarn(
        "listening beyond loopback without API keys: anyone who reaches this port can read "
        "and change every project (set security.auth_enabled)",
        {{"host", settings.host}});
  }
  hooks::HookHandler hook_handler(hooks::HookServices{*sv.tasks, *sv.memory, *sv.sessions, *sv.db});
  api::RegisterHookRoutes(router, hook_handler);
  mcp::ToolServices tool_services{*sv.tasks, *sv.memory, *sv.workflow};
  mcp::ToolRegistry tools = mcp::DevStreamTools(tool_services);
  mcp::ServerInfo mcp_info;
  mcp_info.version = DEVSTREAM_VERSION;
  mcp_info.instructions = McpInstructions();
  mcp::McpServer mcp_server(tools, mcp_info);
  mcp::HttpTransportOptions mcp_options;
  mcp_options.allowed_origins = settings.mcp_allowed_origins;
  mcp_options.access = auth;
  mcp::HttpTransport mcp_http(mcp_server, mcp_options);
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
  sopts.drain_timeout_s = settings.drain_timeout_s;
  bool access_log = settings.access_log;
  sopts.on_complete = [access_log, &metrics](const api::Request& req, const api::Response& res,
                                             double ms) {
    metrics.ObserveRequest(req.method, req.route.empty() ? "(unmatched)" : req.route, res.status,
                           ms / 1000.0);
    if (access_log) {
      LogInfo("request", {{"request_id", req.request_id},
                          {"method", req.method},
                          {"route", req.route.empty() ? req.path : req.route},
                          {"status", res.status},
                          {"bytes", res.body.size()},
                          {"duration_ms", JsonNumber(std::round(ms * 1000) / 1000)},
                          {"remote", req.client_addr.empty() ? req.remote_addr : req.client_addr}});
    }
  };
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
  LogInfo(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining");
  if (http) server.Stop();
  worker.Stop();
  stop_threads();
  if (http) {
    // A graph still building after the drain timeout is abandoned: a stop
    // must not wait for a 1M-vector build (minutes); the next start rebuilds.
    if (Status saved = sv.memory->SaveSidecars(std::chrono::seconds(settings.drain_timeout_s));
        !saved.ok()) {
      LogWarn("saving the index sidecars failed", {{"error", saved.message()}});
    }
  }
  sv.db->WithWriter([](Connection& c) { return c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); }).ok();
  return 0;
}

}  // namespace ds::app
