// Similarity kernels for the exact vector scan. Each kernel is compiled for
// AVX-512, AVX2 and baseline x86-64, and the best set the CPU supports is
// chosen on first use (from glibc's CPU data), so one binary runs everywhere.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ds::memory {

// Dot product of two float vectors of length n.
float Dot(const float* a, const float* b, size_t n);
// Dot products of `query` with `count` rows of `dim` floats stored contiguously.
// `readable` (at least `count`) is how many rows may be read from `rows`: the
// ones past `count` are prefetched, so a scan done block by block keeps the
// memory stream going across blocks.
void DotBatch(const float* query, const float* rows, size_t dim, size_t count, float* out,
              size_t readable = 0);
// Integer dot products of an int8 query with `count` int8 rows of `dim`
// values (int32 accumulation), for the quantised scan.
void DotBatchInt8(const int8_t* query, const int8_t* rows, size_t dim, size_t count, int32_t* out);
// Symmetric int8 quantisation of one vector: q = round(v / scale), scale =
// max|v| / 127 (returned; 0 for the zero vector).
float QuantizeInt8(const float* v, size_t n, int8_t* out);
// A plain scalar reference for tests.
float DotScalar(const float* a, const float* b, size_t n);
// The Dot kernel of the set in use, for a caller that calls it through a
// function pointer of its own anyway (the HNSW distance): one indirect call
// instead of two.
using DotFn = float (*)(const float* a, const float* b, size_t n);
DotFn ActiveDot();
// The kernel set in use: "avx512f", "avx2" or "baseline" (also for builds
// compiled without the wider sets: clang, sanitizers).
const char* SimdKernelSet();

}  // namespace ds::memory
