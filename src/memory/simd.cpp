#include "memory/simd.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#include <sys/platform/x86.h>
#endif

namespace ds::memory {

namespace {

// Sixteen independent accumulators let the compiler vectorise without
// reassociating a single sum (no -ffast-math needed). The bodies are inlined
// into one wrapper per instruction set below, and each wrapper gets the widest
// registers its target has.
#define DS_KERNEL_BODY inline __attribute__((always_inline))

DS_KERNEL_BODY float DotBody(const float* a, const float* b, size_t n) {
  float acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  float s = 0;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s + tail;
}

DS_KERNEL_BODY void DotBatchBody(const float* query, const float* rows, size_t dim, size_t count,
                                 float* out, size_t readable) {
  readable = readable < count ? count : readable;
  for (size_t r = 0; r < count; ++r) {
    const float* row = rows + r * dim;
    // Eight rows ahead: starts the reads the hardware prefetcher would only
    // ramp up to (measured: 19.2 -> 10.8 ms for 100k x 768, 16 -> 28 GB/s).
    if (r + 8 < readable) {
      const float* ahead = row + 8 * dim;
      __builtin_prefetch(ahead, 0, 0);
      __builtin_prefetch(ahead + 256, 0, 0);
      __builtin_prefetch(ahead + 512, 0, 0);
    }
    out[r] = DotBody(query, row, dim);
  }
}

DS_KERNEL_BODY void DotBatchInt8Body(const int8_t* query, const int8_t* rows, size_t dim,
                                     size_t count, int32_t* out) {
  for (size_t r = 0; r < count; ++r) {
    const int8_t* row = rows + r * dim;
    int32_t acc[32] = {0};
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
      for (int j = 0; j < 32; ++j) acc[j] += int32_t{query[i + j]} * int32_t{row[i + j]};
    }
    int32_t s = 0;
    for (; i < dim; ++i) s += int32_t{query[i]} * int32_t{row[i]};
    for (int j = 0; j < 32; ++j) s += acc[j];
    out[r] = s;
  }
}

struct Kernels {
  const char* name;
  float (*dot)(const float*, const float*, size_t);
  void (*dot_batch)(const float*, const float*, size_t, size_t, float*, size_t);
  void (*dot_batch_int8)(const int8_t*, const int8_t*, size_t, size_t, int32_t*);
};

// One set of wrappers compiled for `isa` (empty: the baseline).
#define DS_KERNELS_FOR(name, label, isa)                                                           \
  isa float Dot##name(const float* a, const float* b, size_t n) {                                  \
    return DotBody(a, b, n);                                                                       \
  }                                                                                                \
  isa void DotBatch##name(const float* q, const float* rows, size_t dim, size_t count, float* out, \
                          size_t readable) {                                                       \
    DotBatchBody(q, rows, dim, count, out, readable);                                              \
  }                                                                                                \
  isa void DotBatchInt8##name(const int8_t* q, const int8_t* rows, size_t dim, size_t count,       \
                              int32_t* out) {                                                      \
    DotBatchInt8Body(q, rows, dim, count, out);                                                    \
  }                                                                                                \
  constexpr Kernels k##name{label, Dot##name, DotBatch##name, DotBatchInt8##name};

DS_KERNELS_FOR(Baseline, "baseline", )

// The best set the CPU runs. GCC's target_clones would pick it the same way,
// but its resolver runs libgcc's CPU probe (a dozen cpuid instructions, each a
// trap to the hypervisor in a VM) in every process at start, hooks and CLI
// commands included: ~60 us. glibc's loader has probed the CPU already, and
// <sys/platform/x86.h> reads its answer.
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
DS_KERNELS_FOR(Avx512, "avx512f", __attribute__((target("avx512f"))))
DS_KERNELS_FOR(Avx2, "avx2", __attribute__((target("avx2"))))

const Kernels& Active() {
  static const Kernels& k = CPU_FEATURE_ACTIVE(AVX512F) ? kAvx512
                            : CPU_FEATURE_ACTIVE(AVX2)  ? kAvx2
                                                        : kBaseline;
  return k;
}
#else
const Kernels& Active() {
  return kBaseline;
}
#endif

}  // namespace

float Dot(const float* a, const float* b, size_t n) {
  return Active().dot(a, b, n);
}

void DotBatch(const float* query, const float* rows, size_t dim, size_t count, float* out,
              size_t readable) {
  Active().dot_batch(query, rows, dim, count, out, readable);
}

void DotBatchInt8(const int8_t* query, const int8_t* rows, size_t dim, size_t count, int32_t* out) {
  Active().dot_batch_int8(query, rows, dim, count, out);
}

DotFn ActiveDot() {
  return Active().dot;
}

const char* SimdKernelSet() {
  return Active().name;
}

float QuantizeInt8(const float* v, size_t n, int8_t* out) {
  float max_abs = 0;
  for (size_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(v[i]));
  if (max_abs == 0) {
    std::fill(out, out + n, int8_t{0});
    return 0;
  }
  float scale = max_abs / 127.0f;
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<int8_t>(std::lround(std::clamp(v[i] / scale, -127.0f, 127.0f)));
  }
  return scale;
}

float DotScalar(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

}  // namespace ds::memory
