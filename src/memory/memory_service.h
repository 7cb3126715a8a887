// MemoryService owns DevStream's cross-session memory: storing (redaction,
// dedup by content hash, supersede by file path, embedding), the lifecycle
// (update, forget = archive, delete, pin), hybrid search (FTS5 BM25 + exact
// vector scan fused by Reciprocal Rank Fusion) and budgeted context assembly.
// REST, MCP, hooks and the CLI are thin adapters over it.
//
// Invariants: a memory row, its FTS row (triggers) and its vector (same write
// transaction) never disagree; the in-memory VectorIndex mirrors the
// memory_vectors rows of the embedder's model for memories written through
// this process (other processes' writes: see docs/architecture.md);
// search never mixes models; archived and superseded memories are excluded
// unless asked for.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "memory/embedder.h"
#include "memory/keyword_index.h"
#include "memory/model.h"
#include "memory/vector_index.h"
#include "store/database.h"

namespace ds::memory {

class MemoryService {
 public:
  // `sidecar_dir` holds persisted HNSW graphs (default: "<db path>.index").
  MemoryService(Database& db, Embedder& embedder, VectorIndexOptions index_options = {},
                std::string sidecar_dir = "");
  // Writes access counts still pending (FlushAccessCounts).
  ~MemoryService();

  enum class Indexes {
    kVectors,             // the vector index; keyword search queries FTS5
    kVectorsAndKeywords,  // also the KeywordIndex (worth its build for a server)
  };
  // Loads this model's vectors into the index; call once before serving.
  // Partitions large enough for HNSW load their graph from the sidecar when
  // one matches (then only newer changes are replayed); others are served
  // flat while their graph builds in the background. The keyword index, when
  // asked for, is built from the text on a second thread meanwhile.
  Status LoadIndex(Indexes indexes = Indexes::kVectors);
  // Writes every HNSW partition's graph with the change-log position it
  // covers, after pending background builds finish (call on shutdown).
  // With `build_wait`, builds still running after it are abandoned instead
  // (those partitions get no sidecar and build again on the next start).
  Status SaveSidecars(std::optional<std::chrono::milliseconds> build_wait = std::nullopt);
  // Replays memory_changes newer than what the indexes reflect, so writes by
  // other processes on the same database show up. Search calls it first;
  // cheap when nothing changed (one indexed max() query). The keyword index
  // learns of this process's own writes this way too (it re-reads the text).
  Status SyncIndex();

  Result<StoreResult> Store(const MemoryInput& input);
  // All-or-nothing: one transaction for the whole batch.
  Result<std::vector<StoreResult>> StoreBatch(const std::vector<MemoryInput>& inputs);
  Result<Memory> Get(int64_t id);
  struct Page {
    std::vector<Memory> items;
    std::optional<std::string> next_cursor;
  };
  Result<Page> List(const MemoryFilter& filter);
  Result<Memory> Update(int64_t id, const MemoryPatch& patch);
  Result<Memory> Forget(int64_t id);  // archive
  Status Delete(int64_t id);

  // Returned hits count as accessed (record_access): their counts are
  // collected in memory and written by FlushAccessCounts, so a search takes
  // no write lock (a write per search serialised searches and made every
  // reader re-map the database). The hits carry their incremented counts.
  Result<SearchResult> Search(const SearchQuery& query);
  Result<ContextResult> Context(const ContextQuery& query);
  // Writes the collected access counts in one transaction. A server calls it
  // every half second; the destructor calls it last. Until then, reads of a
  // memory show the count as last written.
  Status FlushAccessCounts();
  Result<MemoryStats> Stats(const std::optional<std::string>& project);

  // Embeds every memory lacking a vector for the current model (after a model
  // change, an import, or writes while the embedder was down). Returns how
  // many were embedded; stops early (OK) when `stop` becomes true.
  // `complete` (optional) tells whether every memory now has a vector.
  Result<int64_t> Reembed(int batch_size = 256, const std::atomic<bool>* stop = nullptr,
                          bool* complete = nullptr);
  // Keeps the newest `keep` change-log entries. A process whose index fell
  // behind the pruned part notices the gap and reloads its index from the
  // tables instead of replaying.
  Result<int64_t> PruneChangeLog(int64_t keep = 100000);
  // Archives stale memories: unpinned, live, relevance_score at most
  // policy.max_relevance and neither created nor accessed within
  // policy.max_age_days. Then merges the FTS index segments when anything
  // was archived or `optimize` is set, and VACUUMs when at least a quarter
  // of a file of 16 MiB or more is free pages. Idempotent.
  Result<RetentionResult> ApplyRetention(const RetentionPolicy& policy, bool optimize = false);
  // Memories lacking a current-model vector (all partitions).
  int64_t MissingVectors() const;

  // Called (outside any lock or transaction) after a write this process made
  // left a memory without a vector because the embedder failed; the app
  // queues an embed_memory job from it. Set before serving.
  void SetMissingVectorListener(std::function<void()> listener) {
    missing_vector_listener_ = std::move(listener);
  }

  // Called after every search with its result (timings, degraded), for
  // metrics. Set before serving.
  void SetSearchListener(std::function<void(const SearchResult&)> listener) {
    search_listener_ = std::move(listener);
  }

  const Embedder& embedder() const { return embedder_; }
  // Null unless loaded (Indexes::kVectorsAndKeywords).
  const KeywordIndex* keyword_index() const { return keywords_.get(); }
  Database& database() { return db_; }

 private:
  struct Prepared;  // an input after redaction, hashing and embedding
  Result<Prepared> Prepare(const MemoryInput& input);

  // Our own committed writes moved the change log from `before` to `after`:
  // advance the replay position when nothing else wrote in between.
  void NoteOwnChanges(int64_t before, int64_t after);
  // db_.Write that also reports the change-log head before and after `fn`.
  Result<std::pair<int64_t, int64_t>> WriteLogged(const std::function<Status(Connection&)>& fn);

  std::string SidecarPath(const std::string& partition) const;
  // Fills keywords_ from the tables; *head: the change-log position it reflects.
  Status LoadKeywordIndex(int64_t* head);
  // How many top keyword matches stage 1 ranks before the filters, for a
  // search that wants `fetch` hits in `project_id`.
  size_t KeywordSlice(size_t fetch, const std::string& project_id) const;
  // Document frequency of each of `terms` (0: no memory has it), cached.
  Result<std::vector<int64_t>> TermFrequencies(Connection& c,
                                               const std::vector<std::string>& terms);
  void NoteVector(const std::string& partition, int64_t id, bool has_vector);
  bool PartitionCovered(const std::string& partition) const;

  Database& db_;
  Embedder& embedder_;
  VectorIndex index_;
  std::string sidecar_dir_;
  Indexes indexes_ = Indexes::kVectors;
  std::unique_ptr<KeywordIndex> keywords_;  // set by LoadIndex when asked for
  std::mutex sync_mu_;
  int64_t applied_seq_ = 0;  // the memory_changes position the index reflects
  int64_t keyword_seq_ = 0;  // ... and the keyword index
  int64_t generation_ = 0;   // the restore generation the index was loaded from

  // Memories per partition without a current-model vector. While a partition
  // has any, its vector ranking comes from the fallback model (the previous
  // default, hash) when that model's vectors exist: after a model change the
  // old model answers until the new one covers the partition, then search
  // switches at once. Rankings never mix models.
  mutable std::mutex missing_mu_;
  std::unordered_map<std::string, std::unordered_set<int64_t>> missing_;
  std::unique_ptr<Embedder> fallback_embedder_;
  std::unique_ptr<VectorIndex> fallback_index_;
  std::function<void()> missing_vector_listener_;
  std::function<void(const SearchResult&)> search_listener_;
  // Document frequencies of query terms (raw term -> rows containing it).
  // Counting a common term scans its whole posting list, which cost more
  // than the search itself, so counts are reused until the number of
  // memories has moved by more than a tenth. Locked by df_mu_.
  std::mutex access_mu_;
  std::unordered_map<int64_t, int64_t> pending_access_;  // memory id -> accesses
  std::string pending_accessed_at_;                      // newest access time
  std::mutex df_mu_;
  std::unordered_map<std::string, int64_t> df_cache_;
  int64_t df_cache_rows_ = 0;
};

// Reciprocal Rank Fusion of two ranked id lists (best first):
// score(id) = wk / (k + rank_k) + wv / (k + rank_v), ranks 1-based.
struct FusedHit {
  int64_t id;
  double score;
  std::optional<int> keyword_rank, vector_rank;
};
std::vector<FusedHit> FuseRrf(const std::vector<int64_t>& keyword,
                              const std::vector<int64_t>& vector, double keyword_weight,
                              double vector_weight, int k = 60);

// Greedy fill of `budget` tokens with the hits in order (or interleaved by
// content type when `diversity`); the last memory that does not fit is
// truncated when at least 32 tokens remain.
ContextResult AssembleContext(const std::vector<SearchHit>& hits, int budget, bool diversity);

}  // namespace ds::memory
