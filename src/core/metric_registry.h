// MetricRegistry holds labelled counters, gauges and histograms and writes
// them in the Prometheus text exposition format (version 0.0.4): per family a
// "# HELP" and a "# TYPE" line, then one sample per label set (histograms:
// cumulative `_bucket{le=...}` samples ending at "+Inf", `_sum`, `_count`).
// Families appear in registration order, label sets in sorted order; a
// family without any label set yet is left out.
//
// It is ours rather than prometheus-cpp's because that library ships only as
// a shared object that needs the shared libstdc++, and loading libstdc++.so
// costs every `devstream` process ~0.5 ms (a hook call is one such process);
// with no C++ shared library left, the binary links libstdc++ statically.
//
// Invariants: names and label names are valid Prometheus identifiers (the
// callers' constants; not checked); label values and help texts are any
// UTF-8 and are escaped on output. A metric returned by Family::Add lives as
// long as the registry.
// Thread-safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ds {

// Label name/value pairs, in the order they are written.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(double by = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending; "+Inf" is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then the +Inf bucket
    double sum = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
};

// What the registry keeps of each family: its text, written on demand.
class MetricFamily {
 public:
  virtual ~MetricFamily() = default;
  // Appends the family's HELP, TYPE and samples (nothing without samples).
  virtual void AppendTo(std::string& out) const = 0;
};

template <typename Metric>
class Family final : public MetricFamily {
 public:
  // The metric with these label values, created on first use. Histograms
  // take their bucket bounds from the family.
  Metric& Add(const MetricLabels& labels);
  void AppendTo(std::string& out) const override;

 private:
  friend class MetricRegistry;
  Family(std::string name, std::string help, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}

  const std::string name_, help_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<MetricLabels, std::unique_ptr<Metric>> metrics_;
};

class MetricRegistry {
 public:
  MetricRegistry() = default;
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  Family<Counter>& AddCounter(const std::string& name, const std::string& help);
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help);
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds);

  // The exposition text of every family.
  std::string Serialize() const;

 private:
  template <typename Metric>
  Family<Metric>& Register(Family<Metric>* family);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_;  // in registration order
};

}  // namespace ds
