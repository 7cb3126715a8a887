// Helpers shared by the benchmark programs: the machine they ran on, latency
// percentiles, a deterministic random source and a wall clock. Header-only;
// not a *_bench.cpp, so bench/CMakeLists.txt does not build it on its own.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace ds::bench {

inline double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Nearest-rank percentile (p in 0..100) of unsorted samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

// splitmix64: tiny, fast and identical on every platform (std distributions
// are implementation-defined, so fixed-seed data would differ across libcs).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n).
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  // Standard normal (Box-Muller; one value per call, the pair's twin dropped).
  double Normal() {
    double u1 = Uniform(), u2 = Uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

 private:
  uint64_t s_;
};

struct Machine {
  std::string cpu_model;
  bool avx2 = false, avx512f = false;  // as /proc/cpuinfo lists them
  long cores = 0;                      // online logical CPUs
  double ram_gib = 0;
  std::string kernel;
  std::string loadavg;  // 1/5/15-minute load averages when the run started
};

inline Machine DescribeMachine() {
  Machine m;
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    auto value = [&] {
      auto colon = line.find(':');
      return colon == std::string::npos ? std::string() : line.substr(colon + 2);
    };
    if (m.cpu_model.empty() && line.rfind("model name", 0) == 0) m.cpu_model = value();
    if (line.rfind("flags", 0) == 0) {
      std::string flags = " " + value() + " ";
      m.avx2 = flags.find(" avx2 ") != std::string::npos;
      m.avx512f = flags.find(" avx512f ") != std::string::npos;
    }
  }
  m.cores = sysconf(_SC_NPROCESSORS_ONLN);
  std::ifstream mem("/proc/meminfo");
  while (std::getline(mem, line)) {
    if (line.rfind("MemTotal:", 0) == 0) {
      m.ram_gib = std::strtod(line.c_str() + 9, nullptr) / (1024.0 * 1024.0);
      break;
    }
  }
  std::ifstream load("/proc/loadavg");
  std::getline(load, m.loadavg);
  m.loadavg =
      m.loadavg.substr(0, m.loadavg.find(' ', m.loadavg.find(' ', m.loadavg.find(' ') + 1) + 1));
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  return m;
}

inline void PrintMachine(const Machine& m) {
  std::printf("machine: %s, %ld logical CPUs, %.1f GiB RAM, %s\n", m.cpu_model.c_str(), m.cores,
              m.ram_gib, m.kernel.c_str());
  std::printf("cpu flags: AVX2 %s, AVX-512F %s; load average at start: %s\n", m.avx2 ? "yes" : "no",
              m.avx512f ? "yes" : "no", m.loadavg.c_str());
}

inline const char* Verdict(bool met) {
  return met ? "met" : "MISSED";
}

}  // namespace ds::bench
