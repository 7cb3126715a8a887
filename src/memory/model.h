// The memory model of DESIGN.md §4/§5: one row of semantic_memory, the inputs
// that create and change it, and the search/context requests and answers.
// Plain values; not synchronised.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds::memory {

struct Memory {
  int64_t id = 0;
  std::string project_id;
  std::optional<std::string> plan_id, phase_id, task_id, session_id;
  std::string content;
  std::string content_type;
  std::string content_format = "text";
  std::string source = "api";
  std::optional<std::string> file_path;
  std::vector<std::string> keywords;
  std::string content_hash;
  double relevance_score = 0.5;
  int64_t access_count = 0;
  std::optional<std::string> last_accessed_at;
  bool pinned = false;
  bool archived = false;
  std::optional<int64_t> superseded_by;
  std::string created_at, updated_at;
};

struct MemoryInput {
  std::optional<std::string> project;
  std::optional<std::string> plan_id, phase_id, task_id, session_id;
  std::string content;
  std::string content_type;
  std::string content_format = "text";
  std::optional<std::string> source;  // adapters fill their own when absent
  std::optional<std::string> file_path;
  std::vector<std::string> keywords;
  double relevance_score = 0.5;
  bool pinned = false;
};

struct MemoryPatch {
  std::optional<std::string> content, content_type, content_format;
  std::optional<std::vector<std::string>> keywords;
  std::optional<double> relevance_score;
  std::optional<bool> pinned, archived;
};

struct StoreResult {
  Memory memory;
  bool deduplicated = false;        // an identical memory already existed; nothing new stored
  int redactions = 0;               // secrets replaced before storing
  std::vector<int64_t> superseded;  // older snapshots of the same file this one replaces
};

struct MemoryFilter {
  std::optional<std::string> project;
  std::vector<std::string> content_types;
  std::optional<std::string> plan_id, phase_id, task_id, session_id, file_path;
  std::optional<std::string> since, until;  // created_at range [since, until)
  bool include_archived = false;            // also archived and superseded memories
  int limit = 50;
  std::optional<std::string> cursor;
};

enum class SearchMode { kHybrid, kVector, kKeyword };

struct SearchQuery {
  std::string query;
  MemoryFilter filter;  // limit = number of results
  SearchMode mode = SearchMode::kHybrid;
  double keyword_weight = 1.0;
  std::optional<double> vector_weight;  // unset: the embedder's FusionWeight()
  // Vector matches below this cosine are dropped; unset = the embedder's noise floor.
  std::optional<double> min_similarity;
  // Optional boosts applied to the fused score (0 = off, the default: on the
  // eval set neither helped, see docs/architecture.md):
  //   importance: x (1 + b * (2 * (relevance_score - 0.5) + pinned))
  //   recency:    x (1 + b * 2^(-age_days / half_life_days))
  double importance_boost = 0;
  double recency_boost = 0;
  double recency_half_life_days = 30;
  bool record_access = true;
};

struct SearchHit {
  Memory memory;
  double score = 0;                  // fused RRF score (or the single side's)
  std::optional<int> keyword_rank;   // 1-based rank in the BM25 list
  std::optional<int> vector_rank;    // 1-based rank in the similarity list
  std::optional<double> similarity;  // cosine similarity
  std::optional<double> bm25;        // as FTS5 bm25() (lower is better)
};

struct SearchResult {
  std::vector<SearchHit> hits;
  std::string vector_model;  // the model whose ranking was used ("" when none)
  bool degraded = false;     // the embedder failed: keyword-only answer
  std::string degraded_reason;
  double took_ms = 0;
  // Where the time went (milliseconds): the query embedding, the keyword
  // (FTS5) ranking, the vector ranking, and fusion with loading the rows.
  double embed_ms = 0, keyword_ms = 0, vector_ms = 0, fusion_ms = 0;
};

struct ContextQuery {
  std::string query;
  MemoryFilter filter;
  int token_budget = 2000;
  bool diversity = false;  // interleave content types instead of pure rank order
};

struct ContextResult {
  std::string context;
  std::vector<int64_t> memory_ids;
  int tokens = 0;
  bool truncated = false;
  bool degraded = false;
};

struct MemoryStats {
  int64_t memories = 0, archived = 0, superseded = 0, vectors = 0;
  std::string model;
  int dim = 0;
  int64_t indexed = 0;
  int64_t vector_bytes = 0;
};

// Memories neither created nor retrieved for max_age_days, unpinned and
// scored at most max_relevance (new memories score 0.5) are archived.
struct RetentionPolicy {
  int max_age_days = 180;
  double max_relevance = 0.5;
};

struct RetentionResult {
  int64_t archived = 0;
  bool fts_optimized = false;
  bool vacuumed = false;
};

const std::vector<std::string_view>& ContentTypes();
const std::vector<std::string_view>& MemorySources();
// Index of a content type in ContentTypes(), or -1.
int ContentTypeIndex(std::string_view type);
// The token estimate used for budgets: ceil(bytes / 4).
int EstimateTokens(std::string_view text);

}  // namespace ds::memory
