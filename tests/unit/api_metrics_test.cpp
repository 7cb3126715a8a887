// api::Metrics counts requests by method, route and status. ObserveRequest
// keeps a per-thread shortcut to the series it used last; these tests change
// one label at a time, and switch between two Metrics instances on the same
// thread (also after one is destroyed), so a stale shortcut would miscount.
#include "api/metrics.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace ds::api {
namespace {

// The value of one series line of the exposition text; -1 when absent.
double SeriesValue(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string Requests(const std::string& method, const std::string& route, int status) {
  return "devstream_http_requests_total{method=\"" + method + "\",route=\"" + route +
         "\",status=\"" + std::to_string(status) + "\"}";
}

std::string DurationCount(const std::string& method, const std::string& route) {
  return "devstream_http_request_duration_seconds_count{method=\"" + method + "\",route=\"" +
         route + "\"}";
}

TEST(ApiMetricsTest, EachRequestCountsInItsOwnSeries) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  Metrics m(*db);
  m.ObserveRequest("GET", "/api/v1/tasks/{id}", 200, 0.001);
  m.ObserveRequest("GET", "/api/v1/tasks/{id}", 200, 0.001);
  m.ObserveRequest("GET", "/api/v1/tasks/{id}", 404, 0.001);
  m.ObserveRequest("HEAD", "/api/v1/tasks/{id}", 200, 0.001);
  m.ObserveRequest("GET", "/api/v1/tasks", 200, 0.001);
  m.ObserveRequest("GET", "/api/v1/tasks/{id}", 200, 0.001);
  std::string text = m.Scrape();
  EXPECT_EQ(SeriesValue(text, Requests("GET", "/api/v1/tasks/{id}", 200)), 3);
  EXPECT_EQ(SeriesValue(text, Requests("GET", "/api/v1/tasks/{id}", 404)), 1);
  EXPECT_EQ(SeriesValue(text, Requests("HEAD", "/api/v1/tasks/{id}", 200)), 1);
  EXPECT_EQ(SeriesValue(text, Requests("GET", "/api/v1/tasks", 200)), 1);
  EXPECT_EQ(SeriesValue(text, DurationCount("GET", "/api/v1/tasks/{id}")), 4);
}

TEST(ApiMetricsTest, InstancesOnOneThreadKeepTheirOwnCounts) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  auto a = std::make_unique<Metrics>(*db);
  auto b = std::make_unique<Metrics>(*db);
  a->ObserveRequest("GET", "/health", 200, 0.001);
  b->ObserveRequest("GET", "/health", 200, 0.001);
  a->ObserveRequest("GET", "/health", 200, 0.001);
  EXPECT_EQ(SeriesValue(a->Scrape(), Requests("GET", "/health", 200)), 2);
  EXPECT_EQ(SeriesValue(b->Scrape(), Requests("GET", "/health", 200)), 1);

  // A new instance, perhaps at the freed address, starts from nothing.
  a->ObserveRequest("GET", "/health", 200, 0.001);
  a.reset();
  auto c = std::make_unique<Metrics>(*db);
  c->ObserveRequest("GET", "/health", 200, 0.001);
  EXPECT_EQ(SeriesValue(c->Scrape(), Requests("GET", "/health", 200)), 1);
}

TEST(ApiMetricsTest, ConcurrentRequestsAreAllCounted) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  Metrics m(*db);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 1000; ++i) {
        m.ObserveRequest("GET", (i + t) % 2 ? "/a" : "/b", i % 3 ? 200 : 500, 0.001);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string text = m.Scrape();
  double total = 0;
  for (const char* route : {"/a", "/b"}) {
    for (int status : {200, 500}) total += SeriesValue(text, Requests("GET", route, status));
  }
  EXPECT_EQ(total, 4000);
}

}  // namespace
}  // namespace ds::api
