// Similarity kernels for the exact vector scan. Each kernel is compiled for
// AVX-512, AVX2 and baseline x86-64 (function multiversioning) and the best
// one the CPU supports is chosen at load time, so one binary runs everywhere.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ds::memory {

// Dot product of two float vectors of length n.
float Dot(const float* a, const float* b, size_t n);
// Dot products of `query` with `count` rows of `dim` floats stored contiguously.
void DotBatch(const float* query, const float* rows, size_t dim, size_t count, float* out);
// A plain scalar reference for tests.
float DotScalar(const float* a, const float* b, size_t n);

}  // namespace ds::memory
