#include "core/metric_registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace ds {
namespace {

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    // Whole numbers (counts, bytes, timestamps) as integers, not 2.76e+08.
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    out.append(buf, r.ptr);
  } else {
    // The shortest round-trip digits in %g layout (0.0005, 1e-07), as
    // Prometheus' Go client writes them: `le` values must keep one form.
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
    out.append(buf, r.ptr);
  }
}

// Help text: backslash and newline escaped; label values: also '"'.
void AppendEscaped(std::string& out, const std::string& s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `name{a="x",b="y"} value\n`; `extra` is one more label (a bucket's le).
void AppendSample(std::string& out, const std::string& name, const MetricLabels& labels,
                  const std::pair<std::string, std::string>* extra, double value) {
  out += name;
  if (!labels.empty() || extra) {
    out += '{';
    bool first = true;
    auto label = [&](const std::pair<std::string, std::string>& l) {
      if (!first) out += ',';
      first = false;
      out += l.first;
      out += "=\"";
      AppendEscaped(out, l.second, true);
      out += '"';
    };
    for (const auto& l : labels) label(l);
    if (extra) label(*extra);
    out += '}';
  }
  out += ' ';
  AppendNumber(out, value);
  out += '\n';
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  out += "# HELP " + name + " ";
  AppendEscaped(out, help, false);
  out += "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Counter::Increment(double by) {
  value_.fetch_add(by, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  // Buckets are "less than or equal": the first bound not below the value.
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                      bounds_.begin());
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[bucket];
  sum_ += value;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t n : counts_) {
    running += n;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  return s;
}

template <typename Metric>
Metric& Family<Metric>::Add(const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = metrics_[labels];
  if (!slot) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      slot = std::make_unique<Histogram>(bounds_);
    } else {
      slot = std::make_unique<Metric>();
    }
  }
  return *slot;
}

template <typename Metric>
void Family<Metric>::AppendTo(std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (metrics_.empty()) return;
  if constexpr (std::is_same_v<Metric, Histogram>) {
    AppendHeader(out, name_, help_, "histogram");
    for (const auto& [labels, metric] : metrics_) {
      Histogram::Snapshot s = metric->Take();
      std::pair<std::string, std::string> le{"le", ""};
      for (size_t b = 0; b <= s.bounds.size(); ++b) {
        le.second.clear();
        AppendNumber(le.second, b < s.bounds.size() ? s.bounds[b] : INFINITY);
        AppendSample(out, name_ + "_bucket", labels, &le, static_cast<double>(s.cumulative[b]));
      }
      AppendSample(out, name_ + "_sum", labels, nullptr, s.sum);
      AppendSample(out, name_ + "_count", labels, nullptr,
                   static_cast<double>(s.cumulative.back()));
    }
  } else {
    AppendHeader(out, name_, help_, std::is_same_v<Metric, Counter> ? "counter" : "gauge");
    for (const auto& [labels, metric] : metrics_) {
      AppendSample(out, name_, labels, nullptr, metric->Value());
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <typename Metric>
Family<Metric>& MetricRegistry::Register(Family<Metric>* family) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.emplace_back(family);
  return *family;
}

Family<Counter>& MetricRegistry::AddCounter(const std::string& name, const std::string& help) {
  return Register(new Family<Counter>(name, help));
}

Family<Gauge>& MetricRegistry::AddGauge(const std::string& name, const std::string& help) {
  return Register(new Family<Gauge>(name, help));
}

Family<Histogram>& MetricRegistry::AddHistogram(const std::string& name, const std::string& help,
                                                std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return Register(new Family<Histogram>(name, help, std::move(bounds)));
}

std::string MetricRegistry::Serialize() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& family : families_) family->AppendTo(out);
  return out;
}

}  // namespace ds
