// Load: the mixed workload (reads, writes, searches, claims with completions,
// MCP tool calls) from 16 concurrent clients against one server (mode all,
// with its embedded worker) for DEVSTREAM_SOAK_SECONDS (default 20). Asserts
// zero 5xx and dropped connections, no lost writes, and the server's open
// descriptors and RSS flat between the end of warm-up and the end (both
// sampled at a quiescent moment). Prints p50/p95/p99 per operation kind: a
// benchmark's figures, never asserted.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "mixed_workload.h"

namespace ds::rtest {
namespace {

struct Sample {
  long rss_kb = -1;
  int fds = -1;
  std::multiset<std::string> fd_targets;
};

// Lets in-flight connections close, then reads /proc.
Sample Quiescent(pid_t pid) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return {RssKb(pid), FdCount(pid), FdTargets(pid)};
}

TEST(LoadTest, MixedWorkloadHasNoErrorsNoLostWritesAndFlatResources) {
  const double seconds = static_cast<double>(EnvLong("DEVSTREAM_SOAK_SECONDS", 20));
  const std::string dir = TempDir();
  DirCleanup cleanup{dir};
  const std::string db = dir + "/load.db";
  // ASan keeps freed memory in a quarantine (256 MB by default) that would
  // dominate RSS; a small one lets RSS show the server's own memory.
  std::string asan = "quarantine_size_mb=16";
  if (const char* a = std::getenv("ASAN_OPTIONS"); a && *a) asan = std::string(a) + ":" + asan;
  Server server(db, dir + "/server.log", {"--mode", "all"},
                {{"DEVSTREAM_LOG_LEVEL", "warn"},
                 {"DEVSTREAM_WORKER_POLL_MS", "100"},
                 {"DEVSTREAM_SCHEDULE", "lease_reaper=5,rollup=5"},
                 {"ASAN_OPTIONS", asan}});
  ASSERT_TRUE(server.Start()) << ReadText(dir + "/server.log");
  const pid_t pid = server.pid();

  auto plan = Http(server.port(), "POST", "/api/v1/plans", R"({"title":"Load plan"})");
  ASSERT_EQ(plan.status, 201) << plan.body;
  auto phase = Http(server.port(), "POST", "/api/v1/plans/" + IdOf(plan.Json()) + "/phases",
                    R"({"name":"Load"})");
  ASSERT_EQ(phase.status, 201) << phase.body;

  WorkloadConfig cfg;
  cfg.ports = {server.port()};
  cfg.plan_id = IdOf(plan.Json());
  cfg.phase_id = IdOf(phase.Json());
  cfg.threads = 16;
  cfg.agent_prefix = "load";
  MixedWorkload work(cfg);
  work.Seed(200, 100);
  const Sample start = Quiescent(pid);

  // Warm-up is the first quarter (caches, reader pool, index, MCP sessions).
  Sample warm;
  size_t memories_at_warm = 0;
  std::vector<long> rss_trace;
  std::atomic<bool> tracing{true};
  std::thread tracer([&] {
    while (tracing) {
      rss_trace.push_back(RssKb(pid));
      for (int i = 0; i < 10 && tracing; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  work.Run(seconds, seconds / 4, [&] {
    warm = Quiescent(pid);
    memories_at_warm = static_cast<size_t>(
        std::atoll(QueryDatabase(db, "SELECT count(*) FROM semantic_memory")[0][0].c_str()));
  });
  tracing = false;
  tracer.join();
  const Sample end = Quiescent(pid);
  const size_t memories_at_end = static_cast<size_t>(
      std::atoll(QueryDatabase(db, "SELECT count(*) FROM semantic_memory")[0][0].c_str()));

  work.latencies().Report(std::cout, "load, 16 clients", work.elapsed_s());
  long peak = 0;
  for (long v : rss_trace) peak = std::max(peak, v);
  std::cout << "[ load ] server RSS " << start.rss_kb / 1024 << " MB at start, "
            << warm.rss_kb / 1024 << " MB after warm-up, " << end.rss_kb / 1024
            << " MB at end (peak " << peak / 1024 << " MB); fds " << start.fds << " / " << warm.fds
            << " / " << end.fds << "; memories " << memories_at_warm << " -> " << memories_at_end
            << "; MCP calls " << work.mcp_calls() << "; claims " << work.claims().size()
            << "\n[ load ] descriptors after warm-up vs start:"
            << FdDiff(start.fd_targets, warm.fd_targets)
            << "; end vs after warm-up:" << FdDiff(warm.fd_targets, end.fd_targets) << std::endl;

  for (const auto& p : work.problems()) ADD_FAILURE() << p;
  EXPECT_EQ(work.server_errors(), 0) << "5xx answers";
  EXPECT_EQ(work.dropped(), 0) << "connections dropped without an answer";
  EXPECT_EQ(work.lock_texts(), 0) << "lock contention in a response body";
  for (const char* kind : {"read", "write", "search", "claim", "transition", "mcp"}) {
    EXPECT_GT(work.latencies().Count(kind), 0u) << "no " << kind << " request ran";
  }
  for (const auto& p : LostWrites(db, work)) ADD_FAILURE() << "lost write: " << p;

  // Descriptors, at quiescent moments: the reader pool opens connections
  // lazily (a database and a WAL descriptor each), so those may still grow
  // after warm-up, but never beyond the pool (10 readers, the writer and the
  // embedded worker's: 12 connections, 24 descriptors). Everything else
  // (listener, sockets, logs, pipes) must be back where it was after
  // warm-up, give or take 2; a leak of one per request would show thousands.
  ASSERT_GT(warm.fds, 0);
  auto on_db = [&](const std::multiset<std::string>& targets) {
    size_t n = 0;
    for (const auto& t : targets) n += t.rfind("load.db", 0) == 0;
    return n;
  };
  EXPECT_LE(on_db(end.fd_targets), 24u);
  EXPECT_LE(end.fd_targets.size() - on_db(end.fd_targets),
            warm.fd_targets.size() - on_db(warm.fd_targets) + 2)
      << "descriptors other than the database's grew:" << FdDiff(warm.fd_targets, end.fd_targets);
  // RSS: growth allowed for the data added after warm-up (each memory adds a
  // 384-d float vector, its index entry and row: measured about 3.5 KiB,
  // allowed 8 KiB) plus 32 MiB for SQLite page caches filling as the file
  // grows (2 MiB per connection, 12 connections) and allocator slack.
  ASSERT_GT(warm.rss_kb, 0);
  const long allowed_kb =
      32 * 1024 +
      8 * static_cast<long>(memories_at_end - std::min(memories_at_end, memories_at_warm));
  EXPECT_LE(end.rss_kb - warm.rss_kb, allowed_kb)
      << "RSS grew from " << warm.rss_kb << " KiB to " << end.rss_kb << " KiB";

  EXPECT_EQ(server.Stop(30000), 0) << "graceful shutdown (LeakSanitizer runs at exit)";
  for (const auto& p : StoreInvariantProblems(db)) ADD_FAILURE() << p;
  EXPECT_FALSE(LooksLikeLockTrouble(ReadText(dir + "/server.log")));
}

}  // namespace
}  // namespace ds::rtest
