// The retrieval evaluation of eval/retrieval/ (see its README): loading the
// frozen memories and queries, indexing the memories into a fresh migrated
// database through MemoryService, running every query in one search mode and
// scoring the ranked answers (recall@5, recall@10, MRR@10, recall@5 by query
// kind). Header-only so bench/retrieval_eval.cpp and
// tests/unit/retrieval_eval_test.cpp share one implementation.
//
// Metrics, per query then averaged over queries:
//   recall@k = |relevant ∩ top k| / |relevant|
//   RR@10    = 1 / rank of the first relevant hit in the top 10, else 0.
// Not thread-safe (one EvalIndex per thread).
#pragma once

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/id.h"
#include "core/json.h"
#include "core/status.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "memory/model.h"
#include "store/database.h"
#include "store/migrations.h"

namespace ds::retrieval_eval {

struct EvalMemory {
  std::string key;  // "m001"
  memory::MemoryInput input;
};

struct EvalQuery {
  std::string id;  // "q001"
  std::string query;
  std::string kind;  // lexical | paraphrase | code | error | decision
  std::vector<std::string> relevant;
};

// The query kinds in report order.
inline const std::vector<std::string>& QueryKinds() {
  static const std::vector<std::string> kinds{"lexical", "paraphrase", "code", "error", "decision"};
  return kinds;
}

// The directory holding memories.jsonl and queries.jsonl, found by walking up
// from `start` (a repository root, a build directory or a source file's folder).
inline std::optional<std::filesystem::path> FindEvalDir(std::filesystem::path start) {
  std::error_code ec;
  start = std::filesystem::absolute(start, ec);
  for (auto p = start; !p.empty(); p = p.parent_path()) {
    auto candidate = p / "eval" / "retrieval";
    if (std::filesystem::exists(candidate / "memories.jsonl", ec) &&
        std::filesystem::exists(candidate / "queries.jsonl", ec)) {
      return candidate;
    }
    if (p == p.parent_path()) break;
  }
  return std::nullopt;
}

namespace detail {

inline Result<std::vector<json::object>> ReadJsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open " + path.string());
  std::vector<json::object> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto v = ParseJson(line);
    if (!v.ok()) {
      return Status::Malformed(path.filename().string() + ":" + std::to_string(line_no) + ": " +
                               v.status().message());
    }
    if (!v->is_object()) {
      return Status::Malformed(path.filename().string() + ":" + std::to_string(line_no) +
                               ": not an object");
    }
    rows.push_back(std::move(v->as_object()));
  }
  return rows;
}

inline std::optional<std::string> Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

inline std::vector<std::string> StrArray(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_array()) return out;
  for (const auto& e : v->as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

}  // namespace detail

inline Result<std::vector<EvalMemory>> LoadMemories(const std::filesystem::path& path) {
  DS_ASSIGN_OR_RETURN(auto rows, detail::ReadJsonl(path));
  std::vector<EvalMemory> out;
  std::set<std::string> seen;
  for (const auto& o : rows) {
    auto key = detail::Str(o, "key");
    auto content = detail::Str(o, "content");
    auto type = detail::Str(o, "content_type");
    if (!key || !content || !type) {
      return Status::Malformed("memory without key, content or content_type");
    }
    if (!seen.insert(*key).second) return Status::Malformed("duplicate memory key " + *key);
    if (memory::ContentTypeIndex(*type) < 0) {
      return Status::Malformed(*key + ": unknown content_type " + *type);
    }
    EvalMemory m;
    m.key = *key;
    m.input.content = *content;
    m.input.content_type = *type;
    if (auto f = detail::Str(o, "content_format")) m.input.content_format = *f;
    m.input.file_path = detail::Str(o, "file_path");
    m.input.keywords = detail::StrArray(o, "keywords");
    out.push_back(std::move(m));
  }
  return out;
}

inline Result<std::vector<EvalQuery>> LoadQueries(const std::filesystem::path& path) {
  DS_ASSIGN_OR_RETURN(auto rows, detail::ReadJsonl(path));
  std::vector<EvalQuery> out;
  for (const auto& o : rows) {
    auto id = detail::Str(o, "id");
    auto query = detail::Str(o, "query");
    auto kind = detail::Str(o, "kind");
    if (!id || !query || !kind) return Status::Malformed("query without id, query or kind");
    EvalQuery q{*id, *query, *kind, detail::StrArray(o, "relevant")};
    if (q.relevant.empty()) return Status::Malformed(q.id + ": no relevant memories");
    out.push_back(std::move(q));
  }
  return out;
}

// ---- the no-shared-word rule (same as eval/retrieval/check_set.py) ----

inline const std::set<std::string, std::less<>>& StopWords() {
  static const std::set<std::string, std::less<>> words{
      "a",      "an",   "the",   "and",   "or",   "of",    "to",    "in",   "on",     "at",
      "by",     "for",  "with",  "from",  "as",   "is",    "are",   "was",  "were",   "be",
      "been",   "it",   "its",   "this",  "that", "these", "those", "we",   "our",    "us",
      "i",      "you",  "your",  "my",    "me",   "do",    "does",  "did",  "what",   "which",
      "how",    "why",  "when",  "where", "who",  "not",   "no",    "can",  "should", "would",
      "could",  "will", "there", "here",  "has",  "have",  "had",   "into", "about",  "after",
      "before", "so",   "if",    "then",  "than", "but",   "any",   "some", "all"};
  return words;
}

// Lower-cased ASCII alphanumeric runs, stop words removed.
inline std::set<std::string> WordSet(std::string_view text) {
  std::set<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty() && !StopWords().count(cur)) out.insert(cur);
    cur.clear();
  };
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80 && std::isalnum(c)) {
      cur.push_back(static_cast<char>(std::tolower(c)));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

// Everything a memory offers to retrieval: content, keywords, file path.
inline std::set<std::string> MemoryWords(const EvalMemory& m) {
  std::string text = m.input.content + " " + m.input.file_path.value_or("");
  for (const auto& k : m.input.keywords) text += " " + k;
  return WordSet(text);
}

// The words a query shares with the union of its relevant memories.
inline std::set<std::string> SharedWords(const EvalQuery& q,
                                         const std::map<std::string, const EvalMemory*>& by_key) {
  std::set<std::string> target;
  for (const auto& r : q.relevant) {
    auto it = by_key.find(r);
    if (it == by_key.end()) continue;
    auto w = MemoryWords(*it->second);
    target.insert(w.begin(), w.end());
  }
  std::set<std::string> shared;
  for (const auto& w : WordSet(q.query)) {
    if (target.count(w)) shared.insert(w);
  }
  return shared;
}

// Number of "paraphrase" queries sharing no word with their relevant memories.
inline int CountDisjointParaphrases(const std::vector<EvalMemory>& mems,
                                    const std::vector<EvalQuery>& queries) {
  std::map<std::string, const EvalMemory*> by_key;
  for (const auto& m : mems) by_key[m.key] = &m;
  int n = 0;
  for (const auto& q : queries) {
    if (q.kind == "paraphrase" && SharedWords(q, by_key).empty()) ++n;
  }
  return n;
}

// ---- scoring ----

inline double RecallAt(const std::vector<std::string>& ranked,
                       const std::vector<std::string>& relevant, size_t k) {
  if (relevant.empty()) return 0;
  std::set<std::string> rel(relevant.begin(), relevant.end());
  size_t found = 0;
  for (size_t i = 0; i < ranked.size() && i < k; ++i) found += rel.count(ranked[i]);
  return static_cast<double>(found) / static_cast<double>(rel.size());
}

inline double ReciprocalRankAt(const std::vector<std::string>& ranked,
                               const std::vector<std::string>& relevant, size_t k) {
  std::set<std::string> rel(relevant.begin(), relevant.end());
  for (size_t i = 0; i < ranked.size() && i < k; ++i) {
    if (rel.count(ranked[i])) return 1.0 / static_cast<double>(i + 1);
  }
  return 0;
}

struct QueryOutcome {
  std::string id, kind;
  std::vector<std::string> ranked;  // memory keys, best first
  double recall5 = 0, recall10 = 0, rr10 = 0;
};

struct ModeMetrics {
  std::string mode;
  int queries = 0;
  double recall5 = 0, recall10 = 0, mrr10 = 0;
  std::map<std::string, double> kind_recall5;  // kind -> mean recall@5
  std::map<std::string, int> kind_queries;
  std::vector<QueryOutcome> outcomes;
};

inline std::string ModeName(memory::SearchMode mode) {
  switch (mode) {
    case memory::SearchMode::kKeyword:
      return "keyword";
    case memory::SearchMode::kVector:
      return "vector";
    case memory::SearchMode::kHybrid:
      return "hybrid";
  }
  return "?";
}

// ---- the index: a temporary database holding the memories ----

class EvalIndex {
 public:
  EvalIndex() = default;
  EvalIndex(const EvalIndex&) = delete;
  EvalIndex& operator=(const EvalIndex&) = delete;
  ~EvalIndex() {
    service_.reset();
    db_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Stores `mems` (one batch) in a fresh migrated database under the system
  // temp directory and loads the vector index.
  static Result<std::unique_ptr<EvalIndex>> Build(const std::vector<EvalMemory>& mems) {
    auto idx = std::unique_ptr<EvalIndex>(new EvalIndex());
    idx->dir_ = std::filesystem::temp_directory_path() / ("ds_retrieval_eval_" + RandomHex(8));
    std::error_code ec;
    std::filesystem::create_directories(idx->dir_, ec);
    if (ec) return Status::Internal("cannot create " + idx->dir_.string() + ": " + ec.message());
    DS_ASSIGN_OR_RETURN(idx->db_, Database::Open((idx->dir_ / "eval.db").string(), {}));
    Migrator migrator(*idx->db_);
    if (auto up = migrator.Up(); !up.ok()) return up.status();
    idx->service_ = std::make_unique<memory::MemoryService>(*idx->db_, idx->embedder_);
    std::vector<memory::MemoryInput> inputs;
    inputs.reserve(mems.size());
    for (const auto& m : mems) inputs.push_back(m.input);
    DS_ASSIGN_OR_RETURN(auto stored, idx->service_->StoreBatch(inputs));
    if (stored.size() != mems.size()) return Status::Internal("StoreBatch returned a short list");
    for (size_t i = 0; i < stored.size(); ++i) {
      const auto& r = stored[i];
      if (r.deduplicated) {
        return Status::Conflict(mems[i].key + " duplicates an earlier memory's content");
      }
      if (!r.superseded.empty()) {
        return Status::Conflict(mems[i].key + " superseded an earlier memory (same file_path)");
      }
      idx->redactions_ += r.redactions;
      idx->key_of_[r.memory.id] = mems[i].key;
    }
    // Searched as a server searches: BM25 from the in-memory keyword index.
    DS_RETURN_IF_ERROR(
        idx->service_->LoadIndex(memory::MemoryService::Indexes::kVectorsAndKeywords));
    return idx;
  }

  // The keys of the top `limit` hits for `query` in `mode`, best first.
  Result<std::vector<std::string>> Rank(const std::string& query, memory::SearchMode mode,
                                        int limit = 10) {
    memory::SearchQuery sq;
    sq.query = query;
    sq.mode = mode;
    sq.filter.limit = limit;
    sq.record_access = false;
    DS_ASSIGN_OR_RETURN(auto res, service_->Search(sq));
    std::vector<std::string> keys;
    for (const auto& h : res.hits) {
      auto it = key_of_.find(h.memory.id);
      keys.push_back(it == key_of_.end() ? "?" : it->second);
    }
    return keys;
  }

  size_t size() const { return key_of_.size(); }
  int redactions() const { return redactions_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  memory::HashEmbedder embedder_;
  std::unique_ptr<memory::MemoryService> service_;  // declared last: destroyed first
  std::unordered_map<int64_t, std::string> key_of_;
  int redactions_ = 0;
};

inline Result<ModeMetrics> Evaluate(EvalIndex& index, const std::vector<EvalQuery>& queries,
                                    memory::SearchMode mode) {
  ModeMetrics mm;
  mm.mode = ModeName(mode);
  for (const auto& q : queries) {
    DS_ASSIGN_OR_RETURN(auto ranked, index.Rank(q.query, mode, 10));
    QueryOutcome o;
    o.id = q.id;
    o.kind = q.kind;
    o.recall5 = RecallAt(ranked, q.relevant, 5);
    o.recall10 = RecallAt(ranked, q.relevant, 10);
    o.rr10 = ReciprocalRankAt(ranked, q.relevant, 10);
    o.ranked = std::move(ranked);
    mm.recall5 += o.recall5;
    mm.recall10 += o.recall10;
    mm.mrr10 += o.rr10;
    mm.kind_recall5[q.kind] += o.recall5;
    mm.kind_queries[q.kind] += 1;
    mm.outcomes.push_back(std::move(o));
  }
  mm.queries = static_cast<int>(queries.size());
  if (mm.queries > 0) {
    mm.recall5 /= mm.queries;
    mm.recall10 /= mm.queries;
    mm.mrr10 /= mm.queries;
  }
  for (auto& [kind, sum] : mm.kind_recall5) sum /= mm.kind_queries[kind];
  return mm;
}

// The metrics table: one row per mode.
inline std::string FormatTable(const std::vector<ModeMetrics>& rows) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << "mode      queries  recall@5  recall@10  mrr@10 |";
  for (const auto& k : QueryKinds()) out << ' ' << std::setw(13) << (k + "@5");
  out << "\n";
  if (!rows.empty()) {
    out << std::string(47, ' ') << '|';
    for (const auto& k : QueryKinds()) {
      auto it = rows.front().kind_queries.find(k);
      int n = it == rows.front().kind_queries.end() ? 0 : it->second;
      out << ' ' << std::setw(13) << ("(n=" + std::to_string(n) + ")");
    }
    out << "\n";
  }
  for (const auto& r : rows) {
    out << std::left << std::setw(8) << r.mode << std::right << "  " << std::setw(7) << r.queries
        << "  " << std::setw(8) << r.recall5 << "  " << std::setw(9) << r.recall10 << "  "
        << std::setw(6) << r.mrr10 << " |";
    for (const auto& k : QueryKinds()) {
      auto it = r.kind_recall5.find(k);
      out << ' ' << std::setw(13);
      if (it == r.kind_recall5.end()) {
        out << '-';
      } else {
        out << it->second;
      }
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace ds::retrieval_eval
