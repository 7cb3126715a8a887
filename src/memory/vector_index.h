// VectorIndex keeps the embeddings of one model in memory, partitioned by
// project, and answers top-k nearest-neighbour queries (inner product of
// L2-normalised vectors = cosine similarity).
// Representation: a partition below `hnsw_threshold` vectors is flat: one
// contiguous row-major float array plus parallel arrays of memory ids and
// per-row flags, scanned exactly with SIMD kernels; Remove swaps the last row
// into the hole so rows stay dense. At the threshold the partition is promoted
// to an HNSW graph — built by a background thread from a snapshot while the
// flat rows keep answering, then swapped in with the writes made meanwhile —
// whose storage then holds the only copy of its vectors;
// filters are applied by over-fetching and post-filtering, widening the fetch,
// and finally falling back to an exact scan over the graph's storage.
// Thread-safety: all methods may be called concurrently; searches share a
// reader lock per index, mutations take it exclusively.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/rw_mutex.h"
#include "core/status.h"
#include "memory/hnsw_graph.h"

namespace ds::memory {

struct VectorHit {
  int64_t memory_id;
  float similarity;
};

// Per-row metadata the scan can filter on without touching the database.
struct VectorMeta {
  uint32_t content_type_bit = 0;  // 1 << index of the content type
  bool live = true;               // false when archived or superseded
};

struct VectorIndexOptions {
  size_t hnsw_threshold = 50000;  // vectors per partition before HNSW takes over
  // Flat partitions also keep int8 copies (+25% memory) and scan those (a
  // quarter of the bytes), then re-rank the best candidates exactly in float.
  bool int8_scan = false;
  size_t int8_rerank = 8;  // candidates re-ranked per result (k * int8_rerank)
  HnswParams hnsw;
};

class VectorIndex {
 public:
  explicit VectorIndex(int dim, VectorIndexOptions opts = {});
  ~VectorIndex();  // stops the background builder
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;
  int dim() const { return dim_; }
  const VectorIndexOptions& options() const { return opts_; }

  // Inserts or replaces the vector of `memory_id` in `partition`.
  void Upsert(const std::string& partition, int64_t memory_id, const float* vec, VectorMeta meta);
  void SetMeta(const std::string& partition, int64_t memory_id, VectorMeta meta);
  void Remove(const std::string& partition, int64_t memory_id);
  // Drops every partition (a full reload follows).
  void Clear();
  // Removes `memory_id` from whichever partition holds it (deletes replayed
  // from the change log no longer know their project).
  void RemoveAnywhere(int64_t memory_id);
  // Top-k by similarity among rows whose type bit is in `type_mask` (0 = all)
  // and that are live unless `include_dead`; `accept` (may be empty) filters further.
  std::vector<VectorHit> Search(const std::string& partition, const float* query, size_t k,
                                uint32_t type_mask, bool include_dead,
                                const std::function<bool(int64_t)>& accept = {}) const;
  size_t Size(const std::string& partition) const;
  size_t TotalSize() const;
  // Bytes held by vectors (for stats and memory budgets).
  size_t VectorBytes() const;
  bool IsHnsw(const std::string& partition) const;
  std::vector<std::string> Partitions() const;

  // Bulk loading (start-up): no promotions while rows stream in; EndBulkLoad()
  // then queues one background build per partition over the threshold (the
  // flat rows answer until each graph is swapped in).
  void BeginBulkLoad();
  void EndBulkLoad();
  // Blocks until queued background promotions have finished (tests).
  void WaitForPromotions();
  // Shutdown: waits at most `timeout` for them, then stops the builds still
  // running (their partitions stay flat) and promotes nothing more. False
  // when a build was stopped.
  bool FinishPromotions(std::chrono::milliseconds timeout);

  // Writes a partition's HNSW graph (NotFound when the partition is flat).
  Status SaveGraph(const std::string& partition, const std::string& path) const;
  // Replaces `partition` with a graph loaded from `path` and the given
  // per-memory flags (memories absent from `meta` are dropped from the graph).
  Status LoadGraph(const std::string& partition, const std::string& path,
                   const std::unordered_map<int64_t, VectorMeta>& meta);

 private:
  struct Partition {
    // Flat representation.
    std::vector<float> rows;
    std::vector<int64_t> ids;
    std::vector<VectorMeta> meta;
    std::unordered_map<int64_t, size_t> slot;
    std::vector<int8_t> qrows;  // int8 copies when int8_scan
    std::vector<float> qscale;  // their per-row scales
    // HNSW representation (flat arrays empty when set).
    std::unique_ptr<HnswGraph> hnsw;
    std::unordered_map<int64_t, VectorMeta> hnsw_meta;
    // While a background build runs: ids written since its snapshot.
    bool promoting = false;
    std::unordered_set<int64_t> dirty;
    uint64_t epoch = 0;  // identifies this partition object across Clear()
  };
  void RemoveLocked(Partition& p, int64_t memory_id);
  void MaybeQueuePromotion(const std::string& name, Partition& p);
  // Snapshot, build unlocked, swap in with the dirty ids re-applied.
  void Promote(const std::string& name);
  void PromoterLoop();

  int dim_;
  VectorIndexOptions opts_;
  mutable RwMutex mu_;
  std::unordered_map<std::string, Partition> partitions_;
  bool bulk_loading_ = false;  // guarded by mu_
  uint64_t next_epoch_ = 1;    // guarded by mu_

  std::mutex promo_mu_;
  std::condition_variable promo_cv_;
  std::deque<std::string> promo_queue_;
  int promo_running_ = 0;
  bool promo_stop_ = false;
  std::atomic<bool> promo_abandon_{false};  // running builds give up (shutdown)
  std::thread promoter_;                    // started on first use
};

// Keeps the k largest (similarity, id) pairs seen; ties prefer the smaller id.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  void Push(int64_t id, float score);
  // Best first.
  std::vector<VectorHit> Take();
  float threshold() const;
  bool full() const { return heap_.size() >= k_; }

 private:
  size_t k_;
  std::vector<VectorHit> heap_;  // min-heap on (similarity, -id)
};

}  // namespace ds::memory
