// A memory written by another process (the CLI on the same database file)
// reaches the running server's vector index within a second, without any
// search to trigger it.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.h"

namespace ds::itest {
namespace {

TEST(MemorySyncTest, OtherProcessWritesReachTheServerIndexWithinASecond) {
  std::string db = TempDir() + "/sync.db";
  ServerProcess server(db);
  ASSERT_TRUE(server.Start());
  auto stats = Http(server.port(), "GET", "/api/v1/memories/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.Json().at("indexed").as_int64(), 0);

  auto stored = RunCli({"memory", "store", "grpc deadline exceeded when the sidecar restarts",
                        "--type", "error", "--db", db});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;

  int64_t indexed = 0;
  for (int i = 0; i < 20 && indexed == 0; ++i) {  // up to 2 s, expected within ~0.5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    indexed = Http(server.port(), "GET", "/api/v1/memories/stats").Json().at("indexed").as_int64();
  }
  EXPECT_EQ(indexed, 1);
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace ds::itest
