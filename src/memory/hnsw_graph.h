// HnswGraph wraps one hnswlib HNSW graph over inner-product distance (cosine
// on L2-normalised vectors). The graph's own storage holds the only copy of
// the partition's vectors, so exact re-ranking and brute-force fallbacks read
// from it (Vector()). Labels are memory ids. Deleted labels are marked (hnswlib
// markDelete) and skipped by searches; re-adding a label updates it in place.
// No hnswlib exception escapes: failures become Status. The vectors and
// links live on transparent huge pages where the kernel grants them:
// hnswlib's large blocks are allocated advised, so a loaded graph lands on
// them as it is read, and a resized one is copied onto them (hnsw_graph.cpp).
// Thread-safety: Search/Vector/ForEach may run concurrently with each other;
// Add may run concurrently with Add for distinct labels (parallel builds);
// otherwise Add/Remove/Save need exclusive access (VectorIndex's lock).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace ds::memory {

struct HnswParams {
  int m = 16;                 // links per node
  int ef_construction = 200;  // build-time beam width
  // Query-time beam width (raised to k when larger). On 200k hash-embedded
  // texts (bench/hnsw_bench): ef 96 -> recall@10 0.877 at 0.56 ms, ef 200 ->
  // 0.951 at 0.98 ms median on one loaded core; M 24 gains little (0.956 at
  // ef 128, 1.0 ms) for 70% more build time.
  int ef_search = 200;
};

class HnswGraph {
 public:
  HnswGraph(int dim, HnswParams params, size_t initial_capacity);
  ~HnswGraph();
  HnswGraph(const HnswGraph&) = delete;
  HnswGraph& operator=(const HnswGraph&) = delete;

  // Loads a graph written by Save(); InvalidArgument when it does not match `dim`.
  static Result<std::unique_ptr<HnswGraph>> Load(const std::string& path, int dim,
                                                 HnswParams params);
  Status Save(const std::string& path) const;

  Status Add(int64_t label, const float* vec);
  void Remove(int64_t label);
  bool Contains(int64_t label) const;
  // The `k` nearest live labels with their similarity, best first.
  std::vector<std::pair<int64_t, float>> Search(const float* query, size_t k) const;
  // Copy of a label's stored vector (empty when absent or deleted).
  std::vector<float> Vector(int64_t label) const;
  // Visits every live (label, vector) pair.
  void ForEach(const std::function<void(int64_t, const float*)>& fn) const;
  size_t size() const;  // live labels
  size_t capacity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::memory
