// KeywordIndex is an in-memory inverted index over the memories' text (the
// content and keywords columns memory_fts indexes), partitioned by project,
// that ranks by BM25 exactly as FTS5's bm25() does over memory_fts: the same
// tokenizer (FtsTokenizer), the same statistics (rows, document frequencies
// and the average length over all partitions) and the same formula
// (k1 = 1.2, b = 0.75, both columns weighted 1), so a score here equals
// bm25(memory_fts) for the same terms. Search cost is the postings scored,
// not a B-tree walk and a sorter per query: the FTS5 path spends about a
// microsecond per scored posting, this one a few nanoseconds.
//
// Representation: a partition holds documents in slots (never reused; a
// re-indexed memory gets a new slot, the old one becomes dead) and, per term,
// a posting list of (slot, term frequency) in slot order, so the end of a
// list holds the newest postings. Removal only marks the slot dead and
// adjusts the statistics; dead postings are skipped and dropped when a
// quarter of a partition's slots are dead. Term ids are global (the
// document frequency is over all partitions, as FTS5's is); a term no live
// memory has leaves the dictionary and its id is reused (postings still
// carrying it are dead, so they are skipped like any dead posting).
// Thread-safety: all methods may be called concurrently; searches share a
// reader lock, mutations take it exclusively.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/rw_mutex.h"
#include "core/status.h"
#include "memory/vector_index.h"
#include "store/fts_tokenizer.h"

namespace ds::memory {

// memory_fts's tokenize= option (store/migrations/0001_initial.sql).
inline constexpr char kMemoryFtsTokenizer[] = "porter unicode61 remove_diacritics 2";

struct KeywordHit {
  int64_t memory_id;
  double bm25;  // FTS5's sign: negative, lower is better
};

struct KeywordIndexOptions {
  // The query keeps its rarest terms while their postings in the partition
  // sum to at most this (always the rarest one); when that term alone has
  // more, only its newest matches this many are scored. BM25 ranks mostly
  // by rare terms, so this bounds the cost of prompts full of common words.
  size_t posting_budget = 1500;
  size_t max_query_terms = 64;
};

class KeywordIndex {
 public:
  // `tokenizer` must be opened with kMemoryFtsTokenizer.
  KeywordIndex(std::unique_ptr<FtsTokenizer> tokenizer, KeywordIndexOptions opts = {});
  KeywordIndex(const KeywordIndex&) = delete;
  KeywordIndex& operator=(const KeywordIndex&) = delete;

  // Indexes (or re-indexes) a memory's text in `partition`, moving it when
  // it was in another one.
  Status Upsert(const std::string& partition, int64_t memory_id, std::string_view content,
                std::string_view keywords, VectorMeta meta);
  void SetMeta(int64_t memory_id, VectorMeta meta);
  void Remove(int64_t memory_id);
  void Clear();

  // Top-k by BM25 over the memories of `partition` whose type bit is in
  // `type_mask` (0 = all), live unless `include_dead`, and accepted by
  // `accept` (may be empty). Best first; ties: the newer memory first.
  Result<std::vector<KeywordHit>> Search(const std::string& partition, std::string_view query,
                                         size_t k, uint32_t type_mask, bool include_dead,
                                         const std::function<bool(int64_t)>& accept = {}) const;

  size_t Size() const;         // documents indexed, all partitions
  size_t MemoryBytes() const;  // approximate heap held

 private:
  struct Posting {
    uint32_t slot;
    uint32_t tf;
  };
  struct Doc {
    int64_t id = 0;
    uint32_t length = 0;  // tokens, both columns
    VectorMeta meta;
    bool present = true;
    std::vector<uint32_t> terms;  // term ids, to undo the statistics on removal
  };
  struct Partition {
    std::vector<Doc> docs;
    std::unordered_map<uint32_t, std::vector<Posting>> postings;
    size_t dead = 0;
  };
  struct Location {
    Partition* partition;
    uint32_t slot;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  void RemoveLocked(int64_t memory_id);
  void CompactLocked(Partition& p);

  std::unique_ptr<FtsTokenizer> tokenizer_;
  KeywordIndexOptions opts_;
  mutable RwMutex mu_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> term_ids_;
  std::vector<uint32_t> df_;                   // per term id: live documents containing it
  std::vector<const std::string*> term_text_;  // per term id: its key in term_ids_
  std::vector<uint32_t> free_terms_;           // ids of terms no live memory has
  std::unordered_map<std::string, std::unique_ptr<Partition>> partitions_;
  std::unordered_map<int64_t, Location> where_;
  uint64_t rows_ = 0;          // live documents
  uint64_t total_length_ = 0;  // their summed lengths
};

}  // namespace ds::memory
