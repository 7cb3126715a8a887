// MetricRegistry: the Prometheus text it writes, sample by sample, and its
// counts under concurrent updates. (The server's whole /metrics page is also
// checked with promtool in tests/integration/operations_test.cpp.)
#include "core/metric_registry.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace ds {
namespace {

TEST(MetricRegistryTest, WritesFamiliesInRegistrationOrderWithSortedLabelSets) {
  MetricRegistry r;
  auto& requests = r.AddCounter("app_requests_total", "Requests");
  auto& sizes = r.AddGauge("app_size_bytes", "Sizes");
  r.AddGauge("app_unused", "Never given a label set");
  requests.Add({{"route", "/b"}}).Increment();
  requests.Add({{"route", "/a"}}).Increment(2.5);
  requests.Add({{"route", "/b"}}).Increment();
  sizes.Add({}).Set(1234567);
  EXPECT_EQ(r.Serialize(),
            "# HELP app_requests_total Requests\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{route=\"/a\"} 2.5\n"
            "app_requests_total{route=\"/b\"} 2\n"
            "# HELP app_size_bytes Sizes\n"
            "# TYPE app_size_bytes gauge\n"
            "app_size_bytes 1234567\n");
}

TEST(MetricRegistryTest, HistogramBucketsAreCumulativeAndInclusive) {
  MetricRegistry r;
  auto& h = r.AddHistogram("lat_seconds", "Latency", {0.01, 0.0005, 1});
  auto& m = h.Add({{"stage", "x"}});
  for (double v : {0.0001, 0.0005, 0.002, 0.5, 7.0}) m.Observe(v);
  EXPECT_EQ(r.Serialize(),
            "# HELP lat_seconds Latency\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{stage=\"x\",le=\"0.0005\"} 2\n"
            "lat_seconds_bucket{stage=\"x\",le=\"0.01\"} 3\n"
            "lat_seconds_bucket{stage=\"x\",le=\"1\"} 4\n"
            "lat_seconds_bucket{stage=\"x\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{stage=\"x\"} 7.5026\n"
            "lat_seconds_count{stage=\"x\"} 5\n");
}

TEST(MetricRegistryTest, EscapesLabelValuesAndHelp) {
  MetricRegistry r;
  r.AddGauge("g", "line one\nback\\slash \"quoted\"")
      .Add({{"project", "a\"b\\c\nd"}, {"kind", "é"}})
      .Set(-1);
  EXPECT_EQ(r.Serialize(),
            "# HELP g line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{project=\"a\\\"b\\\\c\\nd\",kind=\"é\"} -1\n");
}

TEST(MetricRegistryTest, WritesSpecialValues) {
  MetricRegistry r;
  auto& g = r.AddGauge("g", "h");
  g.Add({{"v", "inf"}}).Set(1.0 / 0.0);
  g.Add({{"v", "small"}}).Set(1e-7);
  EXPECT_EQ(r.Serialize(),
            "# HELP g h\n# TYPE g gauge\n"
            "g{v=\"inf\"} +Inf\n"
            "g{v=\"small\"} 1e-07\n");
}

TEST(MetricRegistryTest, ConcurrentUpdatesAreAllCounted) {
  MetricRegistry r;
  auto& c = r.AddCounter("c_total", "c");
  auto& h = r.AddHistogram("h_seconds", "h", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.Add({{"t", std::to_string(i % 2)}}).Increment();
        h.Add({}).Observe(t % 2 ? 0.5 : 2);
        if (i % 1000 == 0) r.Serialize();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(c.Add({{"t", "0"}}).Value() + c.Add({{"t", "1"}}).Value(), 40000);
  auto s = h.Add({}).Take();
  ASSERT_EQ(s.cumulative.size(), 2u);
  EXPECT_EQ(s.cumulative[0], 20000u);
  EXPECT_EQ(s.cumulative[1], 40000u);
  EXPECT_DOUBLE_EQ(s.sum, 20000 * 0.5 + 20000 * 2.0);
}

}  // namespace
}  // namespace ds
