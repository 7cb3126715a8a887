#include "app/serve.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "api/http_server.h"
#include "api/memory_routes.h"
#include "api/rest_api.h"
#include "app/store_open.h"
#include "core/clock.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "memory/remote_embedder.h"
#include "tasks/task_service.h"

namespace ds::app {

int RunServe(const ServeOptions& opts) {
  // Block the shutdown signals before any thread starts so that only the
  // sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto db = OpenMigratedDatabase(opts.db_path, opts.reader_pool);
  if (!db.ok()) {
    std::cerr << "devstream: error: " << db.status().message() << "\n";
    return 1;
  }
  tasks::TaskService task_service(**db);
  api::RestContext ctx{**db, task_service, NowTimestamp()};
  auto embedder_config = memory::EmbedderConfigFromEnv();
  if (!embedder_config.ok()) {
    std::cerr << "devstream: error: " << embedder_config.status().message() << "\n";
    return 2;
  }
  auto embedder = memory::MakeEmbedder(*embedder_config);
  if (!embedder.ok()) {
    std::cerr << "devstream: error: " << embedder.status().message() << "\n";
    return 2;
  }
  auto index_options = memory::VectorIndexOptionsFromEnv();
  if (!index_options.ok()) {
    std::cerr << "devstream: error: " << index_options.status().message() << "\n";
    return 2;
  }
  memory::MemoryService memory_service(**db, **embedder, *index_options);
  if (Status loaded = memory_service.LoadIndex(); !loaded.ok()) {
    std::cerr << "devstream: error: loading the vector index: " << loaded.message() << "\n";
    return 1;
  }
  std::cerr << "devstream: memory model " << (*embedder)->model() << " (" << (*embedder)->dim()
            << " dims)\n";
  // Memories without a vector for this model (a model change, or writes while
  // the embedder was down) are embedded in the background; until a partition
  // is covered, search answers from the previous model where it has vectors.
  std::atomic<bool> stop_reembed{false};
  // Writes by other processes (CLI, hooks, other replicas) reach this index
  // within half a second even when nobody searches meanwhile.
  std::thread index_sync([&] {
    auto last_prune = std::chrono::steady_clock::now();
    while (!stop_reembed) {
      if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(10)) {
        last_prune = std::chrono::steady_clock::now();
        if (auto pruned = memory_service.PruneChangeLog(); !pruned.ok()) {
          std::cerr << "devstream: warning: change-log prune: " << pruned.status().message()
                    << "\n";
        }
      }
      for (int i = 0; i < 5 && !stop_reembed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (Status st = memory_service.SyncIndex(); !st.ok() && !stop_reembed) {
        std::cerr << "devstream: warning: index sync: " << st.message() << "\n";
      }
    }
  });
  std::thread reembedder;
  if (int64_t missing = memory_service.MissingVectors(); missing > 0) {
    std::cerr << "devstream: " << missing << " memories lack " << (*embedder)->model()
              << " vectors; re-embedding in the background\n";
    reembedder = std::thread([&] {
      auto n = memory_service.Reembed(256, &stop_reembed);
      if (n.ok()) {
        std::cerr << "devstream: re-embedded " << *n << " memories\n";
      } else {
        std::cerr << "devstream: warning: re-embedding stopped: " << n.status().message()
                  << " (run devstream memory reembed)\n";
      }
    });
  }
  api::Router router;
  api::RegisterRestRoutes(router, ctx);
  api::RegisterMemoryRoutes(router, memory_service);

  api::ServerOptions sopts;
  sopts.host = opts.host;
  sopts.port = opts.port;
  sopts.threads = opts.threads;
  sopts.body_limit = opts.body_limit;
  api::HttpServer server(sopts, router);
  Status st = server.Start();
  if (!st.ok()) {
    std::cerr << "devstream: error: " << st.message() << "\n";
    return 1;
  }
  std::string host = opts.host.find(':') != std::string::npos ? "[" + opts.host + "]" : opts.host;
  std::cout << "DevStream listening on http://" << host << ":" << server.port() << " (database "
            << (*db)->path() << ")" << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "devstream: received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", draining\n";
  server.Stop();
  stop_reembed = true;
  if (reembedder.joinable()) reembedder.join();
  index_sync.join();
  if (Status saved = memory_service.SaveSidecars(); !saved.ok()) {
    std::cerr << "devstream: warning: " << saved.message() << "\n";
  }
  (*db)->WithWriter([](Connection& c) { return c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); }).ok();
  return 0;
}

}  // namespace ds::app
