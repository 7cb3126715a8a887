#include "memory/memory_service.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"
#include "core/json.h"
#include "core/signing.h"
#include "memory/fts_query.h"
#include "memory/redaction.h"
#include "memory/remote_embedder.h"
#include "store/projects.h"

namespace ds::memory {
namespace {

constexpr char kMemoryCols[] =
    "m.id, m.project_id, m.plan_id, m.phase_id, m.task_id, m.session_id, m.content, "
    "m.content_type, m.content_format, m.source, m.file_path, m.keywords, m.content_hash, "
    "m.relevance_score, m.access_count, m.last_accessed_at, m.pinned, m.archived, "
    "m.superseded_by, m.created_at, m.updated_at";

Memory ReadMemory(const Stmt& s) {
  Memory m;
  m.id = s.Int(0);
  m.project_id = s.Text(1);
  m.plan_id = s.OptText(2);
  m.phase_id = s.OptText(3);
  m.task_id = s.OptText(4);
  m.session_id = s.OptText(5);
  m.content = s.Text(6);
  m.content_type = s.Text(7);
  m.content_format = s.Text(8);
  m.source = s.Text(9);
  m.file_path = s.OptText(10);
  m.keywords = DecodeStringList(s.Text(11));
  m.content_hash = s.Text(12);
  m.relevance_score = s.Double(13);
  m.access_count = s.Int(14);
  m.last_accessed_at = s.OptText(15);
  m.pinned = s.Int(16) != 0;
  m.archived = s.Int(17) != 0;
  m.superseded_by = s.OptInt(18);
  m.created_at = s.Text(19);
  m.updated_at = s.Text(20);
  return m;
}

// Dedup key of a memory: its content, and for a file snapshot also the
// file, so the same text under two paths (or two chunks of one file) stays
// two memories while storing one snapshot twice still deduplicates.
std::string ContentHash(std::string_view content, const std::optional<std::string>& file_path) {
  unsigned char out[16];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, sizeof out);
  if (file_path) {
    std::string prefix = "file:" + *file_path;
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(prefix.data()),
                              prefix.size() + 1);  // with the terminating NUL as separator
  }
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(content.data()),
                            content.size());
  crypto_generichash_final(&st, out, sizeof out);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

// The text that is embedded: content plus keywords (they describe it).
std::string EmbeddingText(const std::string& content, const std::vector<std::string>& keywords) {
  std::string text = content;
  for (const auto& k : keywords) text += "\n" + k;
  return text;
}

VectorMeta MetaFor(const std::string& content_type, bool archived, bool superseded) {
  VectorMeta meta;
  int idx = ContentTypeIndex(content_type);
  meta.content_type_bit = idx >= 0 ? (1u << idx) : 0;
  meta.live = !archived && !superseded;
  return meta;
}

uint32_t TypeMask(const std::vector<std::string>& types) {
  uint32_t mask = 0;
  for (const auto& t : types) {
    int idx = ContentTypeIndex(t);
    if (idx >= 0) mask |= 1u << idx;
  }
  return mask;
}

Result<Memory> LoadMemory(Connection& c, int64_t id) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kMemoryCols +
                                        " FROM semantic_memory m WHERE m.id = ?"));
  s.Bind(1, id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("memory " + std::to_string(id) + " does not exist");
  return ReadMemory(s);
}

// `sql` selects the project id of the linked row; it must exist and belong to
// the memory's project.
Status CheckLink(Connection& c, const std::string& sql, const std::optional<std::string>& id,
                 const char* field, const std::string& project_id) {
  if (!id) return Status::Ok();
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
  s.Bind(1, *id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return Status::InvalidArgument(std::string("memory.") + field + ": " + *id + " does not exist")
        .WithDetail("field", field);
  }
  if (s.Text(0) != project_id) {
    return Status::InvalidArgument(std::string("memory.") + field + ": " + *id +
                                   " belongs to another project")
        .WithDetail("field", field);
  }
  return Status::Ok();
}

Status WriteVector(Connection& c, int64_t memory_id, const std::string& model, const Vector& v) {
  DS_ASSIGN_OR_RETURN(
      Stmt s,
      c.Prepare(
          "INSERT INTO memory_vectors(memory_id, model, dim, vec) VALUES(?,?,?,?)"
          " ON CONFLICT(memory_id, model) DO UPDATE SET dim = excluded.dim, vec = excluded.vec"));
  s.Bind(1, memory_id).Bind(2, model).Bind(3, static_cast<int64_t>(v.size()));
  s.BindBlob(4, v.data(), v.size() * sizeof(float));
  return s.Run();
}

// Appends the SQL for a MemoryFilter (alias m) and returns binder closures.
struct FilterSql {
  std::string where;
  std::vector<std::string> args;  // all text, bound in order
};

FilterSql BuildFilter(const MemoryFilter& f, const std::string& project_id) {
  FilterSql out;
  out.where = " m.project_id = ?";
  out.args.push_back(project_id);
  if (!f.include_archived) out.where += " AND m.archived = 0 AND m.superseded_by IS NULL";
  if (!f.content_types.empty()) {
    out.where += " AND m.content_type IN (SELECT value FROM json_each(?))";
    out.args.push_back(EncodeStringList(f.content_types));
  }
  auto eq = [&](const char* col, const std::optional<std::string>& v) {
    if (!v) return;
    out.where += std::string(" AND m.") + col + " = ?";
    out.args.push_back(*v);
  };
  eq("plan_id", f.plan_id);
  eq("phase_id", f.phase_id);
  eq("task_id", f.task_id);
  eq("session_id", f.session_id);
  eq("file_path", f.file_path);
  if (f.since) {
    out.where += " AND m.created_at >= ?";
    out.args.push_back(*f.since);
  }
  if (f.until) {
    out.where += " AND m.created_at < ?";
    out.args.push_back(*f.until);
  }
  return out;
}

// Bumped by every restore (store/backup.h) in PRAGMA user_version.
Result<int64_t> RestoreGeneration(Connection& c) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("PRAGMA user_version"));
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

Result<int64_t> ChangeLogHead(Connection& c) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT coalesce(max(seq), 0) FROM memory_changes"));
  DS_RETURN_IF_ERROR(s.Step().status());
  return s.Int(0);
}

bool NeedsIdFilter(const MemoryFilter& f) {
  return f.plan_id || f.phase_id || f.task_id || f.session_id || f.file_path || f.since || f.until;
}

std::string AgeText(const std::string& created_at) {
  auto ms = ParseTimestamp(created_at);
  if (!ms) return "";
  int64_t secs = std::max<int64_t>(0, (NowMillis() - *ms) / 1000);
  if (secs < 60) return "just now";
  if (secs < 3600) return std::to_string(secs / 60) + "m ago";
  if (secs < 86400) return std::to_string(secs / 3600) + "h ago";
  return std::to_string(secs / 86400) + "d ago";
}

bool IsCodeFormat(const std::string& format) {
  return format != "text" && format != "markdown" && format != "md" && format != "plain";
}

// The keyword query actually run for `text`, and how many postings (rows
// matched, summed over its terms) it may touch.
struct KeywordQuery {
  std::string match;     // FTS5 MATCH expression; empty: nothing can match
  int64_t postings = 0;  // upper bound of the rows FTS5 scores for it
};

// FTS5 scores every row a MATCH selects, so the cost of a search is the
// number of rows its terms match, not the number of results: a natural-
// language prompt OR-ing 16 terms matched 60-80% of 100k memories and took
// ~130 ms. BM25 ranks a document mostly by its rarest matching terms (IDF
// falls with document frequency; terms in half the rows or more score ~0), so
// the query keeps the rarest terms, in order of rarity, while their summed
// document frequencies stay within kPostingBudget, always keeping the rarest
// one; when that one alone matches more, only its newest kPostingBudget
// matches are scored. Terms no memory contains are dropped (they cannot
// match). Document frequencies are looked up after the index's own porter
// tokenisation (a scratch FTS5 table in the connection's temp schema), via
// fts5vocab, and cached (TermFrequencies).
constexpr int64_t kPostingBudget = 1500;

// The kept terms, rarest first, within the posting budget.
KeywordQuery SelectTerms(const std::vector<std::string>& terms, const std::vector<int64_t>& df) {
  KeywordQuery out;
  std::vector<size_t> order;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (df[i] > 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return df[a] < df[b]; });
  std::vector<std::string> kept;
  for (size_t i : order) {
    if (!kept.empty() && out.postings + df[i] > kPostingBudget) break;
    kept.push_back(terms[i]);
    out.postings += df[i];
  }
  out.match = JoinFtsTerms(kept);
  return out;
}

}  // namespace

size_t MemoryService::KeywordSlice(size_t fetch, const std::string& project_id) const {
  // The slice is joined row by row to apply the filters, and after any write
  // each of those rows is a cold page: size it to what the project filter is
  // expected to keep. The project's share of all memories comes from the
  // vector index's partition sizes; unknown (no vectors yet): the widest.
  const size_t most = std::max<size_t>(fetch * 20, 200);
  const size_t least = std::max<size_t>(fetch * 2, 100);
  size_t mine = index_.Size(project_id);
  size_t all = index_.TotalSize();
  if (mine == 0 || all == 0) return most;
  size_t wanted = fetch * 2 * all / mine;
  return std::clamp(wanted, least, most);
}

Result<std::vector<int64_t>> MemoryService::TermFrequencies(Connection& c,
                                                            const std::vector<std::string>& terms) {
  DS_ASSIGN_OR_RETURN(Stmt n_stmt, c.Prepare("SELECT coalesce(max(id), 0) FROM semantic_memory"));
  DS_RETURN_IF_ERROR(n_stmt.Step().status());
  const int64_t rows = n_stmt.Int(0);
  std::vector<int64_t> df(terms.size(), -1);
  std::vector<size_t> missing;
  {
    std::lock_guard<std::mutex> lock(df_mu_);
    if (std::llabs(rows - df_cache_rows_) * 10 > df_cache_rows_ || df_cache_.size() > 50000) {
      df_cache_.clear();
      df_cache_rows_ = rows;
    }
    for (size_t i = 0; i < terms.size(); ++i) {
      auto it = df_cache_.find(terms[i]);
      if (it != df_cache_.end()) {
        df[i] = it->second;
      } else {
        missing.push_back(i);
      }
    }
  }
  if (missing.empty()) return df;
  DS_RETURN_IF_ERROR(c.Exec(
      "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_stem USING fts5(x, tokenize='porter unicode61 "
      "remove_diacritics 2');"
      "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_stem_vocab USING fts5vocab(temp, ds_stem, "
      "instance);"
      "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_memory_vocab USING fts5vocab(main, memory_fts, "
      "row);"));
  // One scratch row per term (rowid = its index), then one join gives each
  // term's document frequency under the index's own tokenisation.
  DS_RETURN_IF_ERROR(c.Exec("DELETE FROM temp.ds_stem"));
  DS_ASSIGN_OR_RETURN(Stmt ins, c.Prepare("INSERT INTO temp.ds_stem(rowid, x) VALUES(?, ?)"));
  for (size_t i : missing) {
    ins.Reset();
    ins.Bind(1, static_cast<int64_t>(i + 1)).Bind(2, terms[i]);
    DS_RETURN_IF_ERROR(ins.Run());
    df[i] = 0;
  }
  DS_ASSIGN_OR_RETURN(Stmt q, c.Prepare("SELECT s.doc, max(m.doc) FROM temp.ds_stem_vocab s"
                                        " JOIN temp.ds_memory_vocab m ON m.term = s.term"
                                        " GROUP BY s.doc"));
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    int64_t pos = q.Int(0);
    if (pos >= 1 && pos <= static_cast<int64_t>(terms.size())) df[pos - 1] = q.Int(1);
  }
  std::lock_guard<std::mutex> lock(df_mu_);
  for (size_t i : missing) df_cache_[terms[i]] = df[i];
  return df;
}

// ---------------- fusion and context (pure) ----------------

std::vector<FusedHit> FuseRrf(const std::vector<int64_t>& keyword,
                              const std::vector<int64_t>& vector, double keyword_weight,
                              double vector_weight, int k) {
  std::unordered_map<int64_t, FusedHit> by_id;
  for (size_t i = 0; i < keyword.size(); ++i) {
    auto& h = by_id.try_emplace(keyword[i], FusedHit{keyword[i], 0, {}, {}}).first->second;
    if (h.keyword_rank) continue;  // first occurrence wins
    h.keyword_rank = static_cast<int>(i + 1);
    h.score += keyword_weight / (k + static_cast<double>(i + 1));
  }
  for (size_t i = 0; i < vector.size(); ++i) {
    auto& h = by_id.try_emplace(vector[i], FusedHit{vector[i], 0, {}, {}}).first->second;
    if (h.vector_rank) continue;
    h.vector_rank = static_cast<int>(i + 1);
    h.score += vector_weight / (k + static_cast<double>(i + 1));
  }
  std::vector<FusedHit> out;
  out.reserve(by_id.size());
  for (auto& [id, h] : by_id) out.push_back(h);
  std::sort(out.begin(), out.end(), [](const FusedHit& a, const FusedHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.id > b.id;  // newer first on ties
  });
  return out;
}

ContextResult AssembleContext(const std::vector<SearchHit>& hits, int budget, bool diversity) {
  ContextResult out;
  std::vector<const SearchHit*> order;
  if (diversity) {
    // Round-robin over content types, each type keeping its rank order.
    std::map<std::string, std::vector<const SearchHit*>> by_type;
    std::vector<std::string> type_order;
    for (const auto& h : hits) {
      if (!by_type.count(h.memory.content_type)) type_order.push_back(h.memory.content_type);
      by_type[h.memory.content_type].push_back(&h);
    }
    for (size_t round = 0; order.size() < hits.size(); ++round) {
      for (const auto& t : type_order) {
        if (round < by_type[t].size()) order.push_back(by_type[t][round]);
      }
    }
  } else {
    for (const auto& h : hits) order.push_back(&h);
  }
  constexpr int kMinTruncatedTokens = 32;
  for (const SearchHit* h : order) {
    const Memory& m = h->memory;
    std::string header = "## Memory " + std::to_string(m.id) + " · " + m.content_type;
    if (m.file_path) header += " · " + *m.file_path;
    std::string age = AgeText(m.created_at);
    if (!age.empty()) header += " · " + age;
    header += "\n";
    bool fence = IsCodeFormat(m.content_format);
    // The fence must be longer than any backtick run inside the content.
    size_t run = 0, longest = 0;
    for (char ch : m.content) {
      run = ch == '`' ? run + 1 : 0;
      longest = std::max(longest, run);
    }
    std::string ticks(std::max<size_t>(3, longest + 1), '`');
    std::string open = fence ? ticks + m.content_format + "\n" : "";
    std::string close = fence ? "\n" + ticks + "\n" : "\n";
    std::string block = header + open + m.content + close + "\n";
    int tokens = EstimateTokens(block);
    int left = budget - out.tokens;
    if (tokens <= left) {
      out.context += block;
      out.tokens += tokens;
      out.memory_ids.push_back(m.id);
      continue;
    }
    if (left >= kMinTruncatedTokens) {
      const std::string marker = "\n…[truncated]";
      int64_t room =
          static_cast<int64_t>(left) * 4 -
          static_cast<int64_t>(header.size() + open.size() + close.size() + marker.size() + 1);
      if (room > 0) {
        std::string cut(Utf8Prefix(m.content, static_cast<size_t>(room)));
        std::string tblock = header + open + cut + marker + close + "\n";
        int ttokens = EstimateTokens(tblock);
        if (ttokens <= left) {
          out.context += tblock;
          out.tokens += ttokens;
          out.memory_ids.push_back(m.id);
        }
      }
    }
    out.truncated = true;
    break;
  }
  return out;
}

// ---------------- service ----------------

struct MemoryService::Prepared {
  MemoryInput input;
  std::string hash;
  int redactions = 0;
  Vector vector;
  bool embedded = false;
};

MemoryService::MemoryService(Database& db, Embedder& embedder, VectorIndexOptions index_options,
                             std::string sidecar_dir)
    : db_(db),
      embedder_(embedder),
      index_(embedder.dim(), index_options),
      sidecar_dir_(sidecar_dir.empty() ? db.path() + ".index" : std::move(sidecar_dir)) {}

MemoryService::~MemoryService() {
  if (Status st = FlushAccessCounts(); !st.ok()) {
    spdlog::warn("memory: {} access count(s) could not be written: {}", pending_access_.size(),
                 st.message());
  }
}

std::string MemoryService::SidecarPath(const std::string& partition) const {
  std::string model;
  for (char ch : embedder_.model()) {
    model.push_back(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' ? ch
                                                                                           : '_');
  }
  return sidecar_dir_ + "/" + partition + "." + model + ".hnsw";
}

namespace {
struct SidecarInfo {
  std::string model;
  int dim = 0;
  int64_t seq = -1;
};

std::optional<SidecarInfo> ReadSidecarInfo(const std::string& path) {
  std::ifstream in(path + ".json");
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto v = ParseJson(ss.str(), 4);
  if (!v.ok() || !v->is_object()) return std::nullopt;
  const auto& o = v->get_object();
  SidecarInfo info;
  if (auto it = o.find("model"); it != o.end() && it->value().is_string()) {
    info.model = std::string(it->value().get_string());
  }
  if (auto it = o.find("dim"); it != o.end() && it->value().is_int64()) {
    info.dim = static_cast<int>(it->value().get_int64());
  }
  if (auto it = o.find("seq"); it != o.end() && it->value().is_int64()) {
    info.seq = it->value().get_int64();
  }
  return info;
}
}  // namespace

Status MemoryService::LoadKeywordIndex(int64_t* head) {
  // A scan, for the same reasons as the vector scan in LoadIndex.
  return db_.ReadScan([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(*head, ChangeLogHead(c));
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare("SELECT id, project_id, content, keywords, content_type, archived,"
                          " superseded_by IS NOT NULL FROM semantic_memory"));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      DS_RETURN_IF_ERROR(keywords_->Upsert(s.Text(1), s.Int(0), s.Text(2), s.Text(3),
                                           MetaFor(s.Text(4), s.Int(5) != 0, s.Int(6) != 0)));
    }
    return Status::Ok();
  });
}

Status MemoryService::LoadIndex(Indexes indexes) {
  indexes_ = indexes;
  // The keyword index builds on a second thread while the vectors load.
  Status keyword_status;
  int64_t keyword_head = 0;
  std::thread keyword_loader;
  if (indexes == Indexes::kVectorsAndKeywords) {
    if (!keywords_) {
      DS_ASSIGN_OR_RETURN(auto tokenizer, FtsTokenizer::Open(kMemoryFtsTokenizer));
      keywords_ = std::make_unique<KeywordIndex>(std::move(tokenizer));
    }
    keywords_->Clear();
    keyword_loader = std::thread([&] { keyword_status = LoadKeywordIndex(&keyword_head); });
  }
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join_keyword_loader{keyword_loader};
  if (EmbedderIdentity id = embedder_.Identity(); !id.provider.empty()) {
    DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO embedding_models(model, provider, "
                                            "base_url, model_name, dim, first_used_at)"
                                            " VALUES(?,?,?,?,?,?) ON CONFLICT(model) DO UPDATE SET "
                                            "base_url = excluded.base_url"));
      s.Bind(1, embedder_.model()).Bind(2, id.provider).Bind(3, id.base_url).Bind(4, id.model_name);
      s.Bind(5, static_cast<int64_t>(id.dim)).Bind(6, NowTimestamp());
      return s.Run();
    }));
  }
  std::set<std::string> from_sidecar;
  int64_t head = 0;
  int64_t replay_from = INT64_MAX;
  int64_t generation = 0;
  // A scan: it reads every vector once, through a mapping dropped at its end
  // (left mapped, those pages would stay resident beside the index's copy).
  DS_RETURN_IF_ERROR(db_.ReadScan([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(head, ChangeLogHead(c));
    DS_ASSIGN_OR_RETURN(generation, RestoreGeneration(c));
    // Large partitions: try their persisted graphs first.
    DS_ASSIGN_OR_RETURN(
        Stmt parts,
        c.Prepare("SELECT m.project_id, count(*) FROM memory_vectors v JOIN semantic_memory m"
                  " ON m.id = v.memory_id WHERE v.model = ? GROUP BY m.project_id"));
    parts.Bind(1, embedder_.model());
    std::vector<std::pair<std::string, int64_t>> partitions;
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, parts.Step());
      if (!row) break;
      partitions.emplace_back(parts.Text(0), parts.Int(1));
    }
    for (const auto& [project_id, count] : partitions) {
      if (static_cast<size_t>(count) < index_.options().hnsw_threshold) continue;
      std::string path = SidecarPath(project_id);
      auto info = ReadSidecarInfo(path);
      if (!info || info->model != embedder_.model() || info->dim != embedder_.dim() ||
          info->seq < 0 || info->seq > head) {
        continue;
      }
      std::unordered_map<int64_t, VectorMeta> meta;
      DS_ASSIGN_OR_RETURN(
          Stmt m,
          c.Prepare(
              "SELECT id, content_type, archived, superseded_by IS NOT NULL FROM semantic_memory"
              " WHERE project_id = ?"));
      m.Bind(1, project_id);
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, m.Step());
        if (!row) break;
        meta[m.Int(0)] = MetaFor(m.Text(1), m.Int(2) != 0, m.Int(3) != 0);
      }
      if (index_.LoadGraph(project_id, path, meta).ok()) {
        from_sidecar.insert(project_id);
        replay_from = std::min(replay_from, info->seq);
      }
    }
    // The other partitions' vectors, project by project, so a partition
    // whose graph came from its sidecar is never read at all.
    Vector v(static_cast<size_t>(embedder_.dim()));
    index_.BeginBulkLoad();
    for (const auto& [project_id, count] : partitions) {
      if (from_sidecar.count(project_id)) continue;
      DS_ASSIGN_OR_RETURN(Stmt s,
                          c.Prepare("SELECT v.memory_id, v.vec, m.content_type, m.archived,"
                                    " m.superseded_by IS NOT NULL FROM semantic_memory m CROSS JOIN"
                                    " memory_vectors v ON v.memory_id = m.id AND v.model = ?"
                                    " WHERE m.project_id = ? AND v.dim = ?"));
      s.Bind(1, embedder_.model()).Bind(2, project_id);
      s.Bind(3, static_cast<int64_t>(embedder_.dim()));
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        std::string_view blob = s.Blob(1);
        if (blob.size() != static_cast<size_t>(embedder_.dim()) * sizeof(float)) continue;
        std::memcpy(v.data(), blob.data(), blob.size());
        index_.Upsert(project_id, s.Int(0), v.data(),
                      MetaFor(s.Text(2), s.Int(3) != 0, s.Int(4) != 0));
      }
    }
    index_.EndBulkLoad();  // graphs without a sidecar build in the background
    DS_ASSIGN_OR_RETURN(
        Stmt miss,
        c.Prepare("SELECT m.id, m.project_id FROM semantic_memory m WHERE NOT EXISTS (SELECT 1 FROM"
                  " memory_vectors v WHERE v.memory_id = m.id AND v.model = ? AND v.dim = ?)"));
    miss.Bind(1, embedder_.model()).Bind(2, static_cast<int64_t>(embedder_.dim()));
    {
      std::lock_guard<std::mutex> lock(missing_mu_);
      missing_.clear();
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, miss.Step());
        if (!row) break;
        missing_[miss.Text(1)].insert(miss.Int(0));
      }
    }
    // After a model change, the previous model (the one with the most vectors)
    // keeps answering until the new model covers each partition.
    if (MissingVectors() > 0) {
      DS_ASSIGN_OR_RETURN(
          Stmt prev,
          c.Prepare(
              "SELECT v.model, e.provider, e.base_url, e.model_name, coalesce(e.dim, max(v.dim)),"
              " count(*) AS n FROM memory_vectors v LEFT JOIN embedding_models e ON e.model = "
              "v.model"
              " WHERE v.model <> ? GROUP BY v.model ORDER BY n DESC LIMIT 1"));
      prev.Bind(1, embedder_.model());
      DS_ASSIGN_OR_RETURN(bool found, prev.Step());
      std::unique_ptr<Embedder> old_embedder;
      if (found) {
        EmbedderIdentity id{prev.IsNull(1) ? "" : prev.Text(1), prev.IsNull(2) ? "" : prev.Text(2),
                            prev.IsNull(3) ? "" : prev.Text(3), static_cast<int>(prev.Int(4))};
        if (id.provider.empty() && prev.Text(0).rfind("hash-v1-", 0) == 0) id.provider = "hash";
        if (auto made = MakeEmbedderFor(id); made.ok() && (*made)->model() == prev.Text(0)) {
          old_embedder = std::move(made).value();
        }
      }
      prev.Reset();
      if (old_embedder) {
        DS_ASSIGN_OR_RETURN(
            Stmt old,
            c.Prepare(
                "SELECT v.memory_id, m.project_id, v.vec, m.content_type, m.archived,"
                " m.superseded_by IS NOT NULL FROM memory_vectors v"
                " JOIN semantic_memory m ON m.id = v.memory_id WHERE v.model = ? AND v.dim = ?"));
        old.Bind(1, old_embedder->model()).Bind(2, static_cast<int64_t>(old_embedder->dim()));
        auto fallback = std::make_unique<VectorIndex>(old_embedder->dim(), index_.options());
        Vector hv(static_cast<size_t>(old_embedder->dim()));
        size_t loaded = 0;
        for (;;) {
          DS_ASSIGN_OR_RETURN(bool row, old.Step());
          if (!row) break;
          std::string_view blob = old.Blob(2);
          if (blob.size() != hv.size() * sizeof(float)) continue;
          std::memcpy(hv.data(), blob.data(), blob.size());
          fallback->Upsert(old.Text(1), old.Int(0), hv.data(),
                           MetaFor(old.Text(3), old.Int(4) != 0, old.Int(5) != 0));
          ++loaded;
        }
        if (loaded > 0) {
          fallback_index_ = std::move(fallback);
          fallback_embedder_ = std::move(old_embedder);
        }
      }
    }
    return Status::Ok();
  }));
  if (keyword_loader.joinable()) {
    keyword_loader.join();
    DS_RETURN_IF_ERROR(keyword_status);
  }
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    // Replay from the oldest graph's position; everything else is current.
    applied_seq_ = std::min(head, replay_from);
    keyword_seq_ = keyword_head;
    generation_ = generation;
  }
  return SyncIndex();
}

Status MemoryService::SaveSidecars(std::optional<std::chrono::milliseconds> build_wait) {
  if (build_wait) {
    index_.FinishPromotions(*build_wait);
  } else {
    index_.WaitForPromotions();
  }
  DS_RETURN_IF_ERROR(SyncIndex());
  std::lock_guard<std::mutex> lock(sync_mu_);  // applied_seq_ stays put while saving
  for (const auto& p : index_.Partitions()) {
    if (!index_.IsHnsw(p)) continue;
    std::error_code ec;
    std::filesystem::create_directories(sidecar_dir_, ec);
    std::string path = SidecarPath(p);
    DS_RETURN_IF_ERROR(index_.SaveGraph(p, path));
    json::object info{{"model", embedder_.model()},
                      {"dim", embedder_.dim()},
                      {"seq", applied_seq_},
                      {"count", static_cast<int64_t>(index_.Size(p))}};
    std::string tmp = path + ".json.tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << json::serialize(info);
      if (!out) return Status::Internal("cannot write " + tmp);
    }
    std::filesystem::rename(tmp, path + ".json", ec);
    if (ec) return Status::Internal("cannot write " + path + ".json: " + ec.message());
  }
  return Status::Ok();
}

void MemoryService::NoteVector(const std::string& partition, int64_t id, bool has_vector) {
  std::lock_guard<std::mutex> lock(missing_mu_);
  if (has_vector) {
    auto it = missing_.find(partition);
    if (it != missing_.end()) it->second.erase(id);
  } else {
    missing_[partition].insert(id);
  }
}

bool MemoryService::PartitionCovered(const std::string& partition) const {
  std::lock_guard<std::mutex> lock(missing_mu_);
  auto it = missing_.find(partition);
  return it == missing_.end() || it->second.empty();
}

int64_t MemoryService::MissingVectors() const {
  std::lock_guard<std::mutex> lock(missing_mu_);
  int64_t n = 0;
  for (const auto& [p, ids] : missing_) n += static_cast<int64_t>(ids.size());
  return n;
}

Result<int64_t> MemoryService::PruneChangeLog(int64_t keep) {
  int64_t removed = 0;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "DELETE FROM memory_changes WHERE seq <= (SELECT max(seq) FROM memory_changes) - ?"));
    s.Bind(1, keep);
    DS_RETURN_IF_ERROR(s.Run());
    removed = c.Changes();
    return Status::Ok();
  }));
  return removed;
}

Result<std::pair<int64_t, int64_t>> MemoryService::WriteLogged(
    const std::function<Status(Connection&)>& fn) {
  int64_t before = 0, after = 0;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(before, ChangeLogHead(c));
    DS_RETURN_IF_ERROR(fn(c));
    DS_ASSIGN_OR_RETURN(after, ChangeLogHead(c));
    return Status::Ok();
  }));
  return std::make_pair(before, after);
}

void MemoryService::NoteOwnChanges(int64_t before, int64_t after) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  if (applied_seq_ == before) applied_seq_ = after;
}

Status MemoryService::SyncIndex() {
  std::unique_lock<std::mutex> lock(sync_mu_);
  const bool keywords = keywords_ != nullptr;
  for (;;) {
    // Each memory's state as of the snapshot read (not the logged op), so
    // replay is idempotent and order-free. The two indexes replay from their
    // own positions: this process's writes reach the vector index directly
    // (NoteOwnChanges) but the keyword index only through here.
    struct Change {
      int64_t id = 0;
      bool for_vectors = false, for_keywords = false;
      std::optional<std::string> project_id, content_type;  // none: deleted
      bool archived = false, superseded = false;
      std::string vec, content, keywords;
    };
    std::vector<Change> changes;
    const int64_t from = keywords ? std::min(applied_seq_, keyword_seq_) : applied_seq_;
    int64_t last = from;
    bool gap = false;
    DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(int64_t generation, RestoreGeneration(c));
      DS_ASSIGN_OR_RETURN(int64_t head, ChangeLogHead(c));
      // A restore replaced the tables under us (or the log went backwards):
      // replay cannot be trusted.
      if (generation != generation_ || head < applied_seq_ || (keywords && head < keyword_seq_)) {
        gap = true;
        return Status::Ok();
      }
      if (head == from) return Status::Ok();
      // Entries we have not applied were pruned: replay cannot be trusted.
      DS_ASSIGN_OR_RETURN(Stmt oldest,
                          c.Prepare("SELECT coalesce(min(seq), 0) FROM memory_changes"));
      DS_RETURN_IF_ERROR(oldest.Step().status());
      if (oldest.Int(0) > from + 1) {
        gap = true;
        return Status::Ok();
      }
      DS_ASSIGN_OR_RETURN(
          Stmt log,
          c.Prepare(
              "SELECT seq, memory_id FROM memory_changes WHERE seq > ? ORDER BY seq LIMIT 5000"));
      log.Bind(1, from);
      std::unordered_map<int64_t, size_t> index_of;
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, log.Step());
        if (!row) break;
        last = log.Int(0);
        auto [it, fresh] = index_of.try_emplace(log.Int(1), changes.size());
        if (fresh) changes.emplace_back().id = log.Int(1);
        Change& ch = changes[it->second];
        ch.for_vectors = ch.for_vectors || last > applied_seq_;
        ch.for_keywords = ch.for_keywords || (keywords && last > keyword_seq_);
      }
      DS_ASSIGN_OR_RETURN(
          Stmt cur,
          c.Prepare("SELECT m.project_id, m.content_type, m.archived, m.superseded_by IS NOT NULL,"
                    " v.vec, m.content, m.keywords FROM semantic_memory m LEFT JOIN memory_vectors"
                    " v ON v.memory_id = m.id AND v.model = ? AND v.dim = ? WHERE m.id = ?"));
      for (Change& ch : changes) {
        cur.Bind(1, embedder_.model()).Bind(2, static_cast<int64_t>(embedder_.dim()));
        cur.Bind(3, ch.id);
        DS_ASSIGN_OR_RETURN(bool row, cur.Step());
        if (row) {
          ch.project_id = cur.Text(0);
          ch.content_type = cur.Text(1);
          ch.archived = cur.Int(2) != 0;
          ch.superseded = cur.Int(3) != 0;
          if (ch.for_vectors) ch.vec = std::string(cur.Blob(4));
          if (ch.for_keywords) {
            ch.content = cur.Text(5);
            ch.keywords = cur.Text(6);
          }
        }
        cur.Reset();
      }
      return Status::Ok();
    }));
    if (gap) {
      // Fell behind a pruned log (e.g. a process idle for a long time):
      // rebuild the indexes from the tables, which are always current.
      lock.unlock();
      index_.Clear();
      return LoadIndex(indexes_);
    }
    if (changes.empty() && last == from) return Status::Ok();
    for (const auto& ch : changes) {
      if (ch.for_keywords) {
        if (ch.project_id) {
          DS_RETURN_IF_ERROR(
              keywords_->Upsert(*ch.project_id, ch.id, ch.content, ch.keywords,
                                MetaFor(*ch.content_type, ch.archived, ch.superseded)));
        } else {
          keywords_->Remove(ch.id);
        }
      }
      if (!ch.for_vectors) continue;
      if (!ch.project_id) {  // deleted
        index_.RemoveAnywhere(ch.id);
        std::lock_guard<std::mutex> lock(missing_mu_);
        for (auto& [p, ids] : missing_) ids.erase(ch.id);
        continue;
      }
      if (ch.vec.size() != static_cast<size_t>(embedder_.dim()) * sizeof(float)) {
        index_.RemoveAnywhere(ch.id);
        NoteVector(*ch.project_id, ch.id, false);
        continue;
      }
      NoteVector(*ch.project_id, ch.id, true);
      Vector v(static_cast<size_t>(embedder_.dim()));
      std::memcpy(v.data(), ch.vec.data(), ch.vec.size());
      index_.Upsert(*ch.project_id, ch.id, v.data(),
                    MetaFor(*ch.content_type, ch.archived, ch.superseded));
    }
    applied_seq_ = std::max(applied_seq_, last);
    if (keywords) keyword_seq_ = std::max(keyword_seq_, last);
  }
}

Result<MemoryService::Prepared> MemoryService::Prepare(const MemoryInput& input) {
  Prepared p;
  p.input = input;
  Redaction r = RedactSecrets(input.content);
  p.redactions = r.count;
  p.input.content = std::move(r.text);
  for (auto& k : p.input.keywords) {
    Redaction rk = RedactSecrets(k);
    p.redactions += rk.count;
    k = std::move(rk.text);
  }
  p.hash = ContentHash(p.input.content, p.input.file_path);
  return p;
}

Result<std::vector<StoreResult>> MemoryService::StoreBatch(const std::vector<MemoryInput>& inputs) {
  std::vector<Prepared> prepared;
  prepared.reserve(inputs.size());
  for (const auto& in : inputs) {
    DS_ASSIGN_OR_RETURN(Prepared p, Prepare(in));
    prepared.push_back(std::move(p));
  }
  // Embed outside the write transaction. A failing embedder does not lose
  // the write: the memory is stored without a vector and picked up by Reembed.
  {
    std::vector<std::string> texts;
    texts.reserve(prepared.size());
    for (const auto& p : prepared)
      texts.push_back(EmbeddingText(p.input.content, p.input.keywords));
    auto vectors = embedder_.Embed(texts);
    if (vectors.ok() && vectors->size() == prepared.size()) {
      for (size_t i = 0; i < prepared.size(); ++i) {
        prepared[i].vector = std::move((*vectors)[i]);
        prepared[i].embedded = prepared[i].vector.size() == static_cast<size_t>(embedder_.dim());
      }
    }
  }
  std::vector<StoreResult> results(prepared.size());
  struct IndexOp {
    std::string partition;
    int64_t id;
    size_t prepared_index;
    std::vector<int64_t> superseded;
  };
  std::vector<IndexOp> ops;
  auto logged = WriteLogged([&](Connection& c) -> Status {
    ops.clear();
    std::string now = NowTimestamp();
    std::unordered_map<std::string, Project> projects;
    for (size_t i = 0; i < prepared.size(); ++i) {
      const MemoryInput& in = prepared[i].input;
      std::string key = in.project.value_or(kDefaultProject);
      auto pit = projects.find(key);
      if (pit == projects.end()) {
        DS_ASSIGN_OR_RETURN(Project proj, ProjectForWrite(c, in.project));
        pit = projects.emplace(key, proj).first;
      }
      const std::string& project_id = pit->second.id;
      // Dedup: identical content in the same project returns the existing memory.
      DS_ASSIGN_OR_RETURN(Stmt find, c.Prepare("SELECT id, archived FROM semantic_memory "
                                               "WHERE project_id = ? AND content_hash = ?"));
      find.Bind(1, project_id).Bind(2, prepared[i].hash);
      DS_ASSIGN_OR_RETURN(bool exists, find.Step());
      if (exists) {
        int64_t id = find.Int(0);
        find.Reset();
        DS_ASSIGN_OR_RETURN(Memory existing, LoadMemory(c, id));
        bool changed = false;
        if (existing.archived) {
          // Storing it again means it matters again.
          DS_ASSIGN_OR_RETURN(Stmt revive, c.Prepare("UPDATE semantic_memory SET archived = 0, "
                                                     "updated_at = ? WHERE id = ?"));
          revive.Bind(1, now).Bind(2, id);
          DS_RETURN_IF_ERROR(revive.Run());
          changed = true;
        }
        std::vector<int64_t> superseded;
        if (existing.superseded_by && existing.file_path) {
          // An older snapshot of a file stored again (a revert) is current
          // again, and the snapshots that had replaced it step back.
          DS_ASSIGN_OR_RETURN(
              Stmt cur,
              c.Prepare("SELECT id FROM semantic_memory WHERE project_id = ? AND file_path = ?"
                        " AND content_type = ? AND id <> ? AND superseded_by IS NULL"));
          cur.Bind(1, project_id).Bind(2, *existing.file_path).Bind(3, existing.content_type);
          cur.Bind(4, id);
          for (;;) {
            DS_ASSIGN_OR_RETURN(bool row, cur.Step());
            if (!row) break;
            superseded.push_back(cur.Int(0));
          }
          for (int64_t other : superseded) {
            DS_ASSIGN_OR_RETURN(Stmt sup, c.Prepare("UPDATE semantic_memory SET superseded_by = ?,"
                                                    " updated_at = ? WHERE id = ?"));
            sup.Bind(1, id).Bind(2, now).Bind(3, other);
            DS_RETURN_IF_ERROR(sup.Run());
          }
          DS_ASSIGN_OR_RETURN(Stmt clear, c.Prepare("UPDATE semantic_memory SET superseded_by ="
                                                    " NULL, updated_at = ? WHERE id = ?"));
          clear.Bind(1, now).Bind(2, id);
          DS_RETURN_IF_ERROR(clear.Run());
          changed = true;
        }
        DS_ASSIGN_OR_RETURN(Memory m, LoadMemory(c, id));
        results[i] = StoreResult{std::move(m), true, prepared[i].redactions, superseded};
        if (changed) ops.push_back({project_id, id, SIZE_MAX, superseded});
        continue;
      }
      DS_RETURN_IF_ERROR(CheckLink(c, "SELECT project_id FROM intervention_plans WHERE id = ?",
                                   in.plan_id, "plan_id", project_id));
      DS_RETURN_IF_ERROR(CheckLink(c,
                                   "SELECT pl.project_id FROM phases ph JOIN "
                                   "intervention_plans pl ON pl.id = ph.plan_id WHERE ph.id = ?",
                                   in.phase_id, "phase_id", project_id));
      DS_RETURN_IF_ERROR(CheckLink(c,
                                   "SELECT pl.project_id FROM micro_tasks t JOIN phases ph "
                                   "ON ph.id = t.phase_id JOIN intervention_plans pl ON pl.id = "
                                   "ph.plan_id WHERE t.id = ?",
                                   in.task_id, "task_id", project_id));
      DS_RETURN_IF_ERROR(CheckLink(c, "SELECT project_id FROM work_sessions WHERE id = ?",
                                   in.session_id, "session_id", project_id));
      DS_ASSIGN_OR_RETURN(
          Stmt ins,
          c.Prepare(
              "INSERT INTO semantic_memory(project_id, plan_id, phase_id, task_id, session_id,"
              " content, content_type, content_format, source, file_path, keywords, content_hash,"
              " relevance_score, pinned, created_at, updated_at)"
              " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
      ins.Bind(1, project_id).Bind(2, in.plan_id).Bind(3, in.phase_id).Bind(4, in.task_id);
      ins.Bind(5, in.session_id).Bind(6, in.content).Bind(7, in.content_type);
      ins.Bind(8, in.content_format).Bind(9, in.source.value_or("api")).Bind(10, in.file_path);
      ins.Bind(11, EncodeStringList(in.keywords)).Bind(12, prepared[i].hash);
      ins.Bind(13, in.relevance_score).Bind(14, static_cast<int64_t>(in.pinned));
      ins.Bind(15, now).Bind(16, now);
      DS_RETURN_IF_ERROR(ins.Run());
      int64_t id = c.LastInsertRowid();
      if (prepared[i].embedded) {
        DS_RETURN_IF_ERROR(WriteVector(c, id, embedder_.model(), prepared[i].vector));
      }
      std::vector<int64_t> superseded;
      if (in.file_path) {
        DS_ASSIGN_OR_RETURN(
            Stmt olds,
            c.Prepare("SELECT id FROM semantic_memory WHERE project_id = ? AND file_path = ?"
                      " AND content_type = ? AND id <> ? AND superseded_by IS NULL"));
        olds.Bind(1, project_id).Bind(2, *in.file_path).Bind(3, in.content_type).Bind(4, id);
        for (;;) {
          DS_ASSIGN_OR_RETURN(bool row, olds.Step());
          if (!row) break;
          superseded.push_back(olds.Int(0));
        }
        for (int64_t old : superseded) {
          DS_ASSIGN_OR_RETURN(Stmt sup, c.Prepare("UPDATE semantic_memory SET superseded_by = ?,"
                                                  " updated_at = ? WHERE id = ?"));
          sup.Bind(1, id).Bind(2, now).Bind(3, old);
          DS_RETURN_IF_ERROR(sup.Run());
        }
      }
      DS_ASSIGN_OR_RETURN(Memory m, LoadMemory(c, id));
      results[i] = StoreResult{std::move(m), false, prepared[i].redactions, superseded};
      ops.push_back({project_id, id, i, std::move(superseded)});
    }
    return Status::Ok();
  });
  if (!logged.ok()) return logged.status();
  bool any_unembedded = false;
  // Mirror the committed rows in the index.
  for (const auto& op : ops) {
    if (op.prepared_index == SIZE_MAX) {
      // A revived duplicate (un-archived, or a reverted file snapshot): live again.
      for (const auto& r : results) {
        if (r.memory.id != op.id) continue;
        index_.SetMeta(op.partition, op.id,
                       MetaFor(r.memory.content_type, false, r.memory.superseded_by.has_value()));
        for (int64_t old : op.superseded) {
          index_.SetMeta(op.partition, old, MetaFor(r.memory.content_type, false, true));
        }
      }
      continue;
    }
    const Prepared& p = prepared[op.prepared_index];
    if (p.embedded) {
      index_.Upsert(op.partition, op.id, p.vector.data(),
                    MetaFor(p.input.content_type, false, false));
    }
    NoteVector(op.partition, op.id, p.embedded);
    if (!p.embedded) any_unembedded = true;
    for (int64_t old : op.superseded) {
      index_.SetMeta(op.partition, old, MetaFor(p.input.content_type, false, true));
    }
  }
  NoteOwnChanges(logged->first, logged->second);
  if (any_unembedded && missing_vector_listener_) missing_vector_listener_();
  return results;
}

Result<StoreResult> MemoryService::Store(const MemoryInput& input) {
  DS_ASSIGN_OR_RETURN(auto results, StoreBatch({input}));
  return std::move(results[0]);
}

Result<Memory> MemoryService::Get(int64_t id) {
  std::optional<Memory> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Memory m, LoadMemory(c, id));
    out = std::move(m);
    return Status::Ok();
  }));
  return *out;
}

Result<MemoryService::Page> MemoryService::List(const MemoryFilter& f) {
  Page page;
  int64_t after = INT64_MAX;  // newest first: ids below the cursor
  if (f.cursor && !f.cursor->empty()) {
    auto raw = DecodeCursor(f.cursor);
    char* end = nullptr;
    if (!raw || raw->rfind("before:", 0) != 0 ||
        (after = std::strtoll(raw->c_str() + 7, &end, 10), *end != '\0') || after <= 0) {
      return Status::InvalidArgument("cursor is not a cursor this server issued")
          .WithDetail("field", "cursor");
    }
  }
  int limit = std::clamp(f.limit, 1, 500);
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, f.project));
    if (!project_id) return Status::Ok();
    FilterSql fs = BuildFilter(f, *project_id);
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare(std::string("SELECT ") + kMemoryCols + " FROM semantic_memory m WHERE" +
                          fs.where + " AND m.id < ? ORDER BY m.id DESC LIMIT ?"));
    int i = 1;
    for (const auto& a : fs.args) s.Bind(i++, a);
    s.Bind(i, after);
    s.Bind(i + 1, static_cast<int64_t>(limit + 1));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.items.push_back(ReadMemory(s));
    }
    return Status::Ok();
  }));
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    page.next_cursor = EncodeCursor("before:" + std::to_string(page.items.back().id));
  }
  return page;
}

Result<Memory> MemoryService::Update(int64_t id, const MemoryPatch& patch) {
  std::optional<Prepared> prepared;
  if (patch.content || patch.keywords) {
    // Re-embed outside the transaction from the would-be new text.
    DS_ASSIGN_OR_RETURN(Memory cur, Get(id));
    MemoryInput in;
    in.content = patch.content.value_or(cur.content);
    in.keywords = patch.keywords.value_or(cur.keywords);
    in.content_type = patch.content_type.value_or(cur.content_type);
    in.file_path = cur.file_path;
    DS_ASSIGN_OR_RETURN(Prepared p, Prepare(in));
    auto vecs = embedder_.Embed({EmbeddingText(p.input.content, p.input.keywords)});
    if (vecs.ok() && vecs->size() == 1) {
      p.vector = std::move((*vecs)[0]);
      p.embedded = true;
    }
    prepared = std::move(p);
  }
  std::optional<Memory> out;
  auto logged = WriteLogged([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Memory m, LoadMemory(c, id));
    if (prepared) {
      if (prepared->hash != m.content_hash) {
        DS_ASSIGN_OR_RETURN(Stmt dup, c.Prepare("SELECT id FROM semantic_memory WHERE "
                                                "project_id = ? AND content_hash = ? AND id <> ?"));
        dup.Bind(1, m.project_id).Bind(2, prepared->hash).Bind(3, id);
        DS_ASSIGN_OR_RETURN(bool row, dup.Step());
        if (row) {
          return Status::Conflict("memory " + std::to_string(dup.Int(0)) +
                                  " already has this content")
              .WithDetail("existing_id", dup.Int(0));
        }
      }
      m.content = prepared->input.content;
      m.keywords = prepared->input.keywords;
      m.content_hash = prepared->hash;
    }
    if (patch.content_type) m.content_type = *patch.content_type;
    if (patch.content_format) m.content_format = *patch.content_format;
    if (patch.relevance_score) m.relevance_score = *patch.relevance_score;
    if (patch.pinned) m.pinned = *patch.pinned;
    if (patch.archived) m.archived = *patch.archived;
    m.updated_at = NowTimestamp();
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "UPDATE semantic_memory SET content=?2, keywords=?3, content_hash=?4, content_type=?5,"
            " content_format=?6, relevance_score=?7, pinned=?8, archived=?9, updated_at=?10"
            " WHERE id=?1"));
    s.Bind(1, id).Bind(2, m.content).Bind(3, EncodeStringList(m.keywords)).Bind(4, m.content_hash);
    s.Bind(5, m.content_type).Bind(6, m.content_format).Bind(7, m.relevance_score);
    s.Bind(8, static_cast<int64_t>(m.pinned)).Bind(9, static_cast<int64_t>(m.archived));
    s.Bind(10, m.updated_at);
    DS_RETURN_IF_ERROR(s.Run());
    if (prepared && prepared->embedded) {
      DS_RETURN_IF_ERROR(WriteVector(c, id, embedder_.model(), prepared->vector));
    } else if (prepared) {
      // The text changed but could not be embedded: a stale vector would
      // answer for the old text, so drop it; Reembed fills it in later.
      DS_ASSIGN_OR_RETURN(Stmt drop, c.Prepare("DELETE FROM memory_vectors WHERE memory_id = ?"
                                               " AND model = ?"));
      drop.Bind(1, id).Bind(2, embedder_.model());
      DS_RETURN_IF_ERROR(drop.Run());
    }
    out = std::move(m);
    return Status::Ok();
  });
  if (!logged.ok()) return logged.status();
  if (prepared && prepared->embedded) {
    index_.Upsert(out->project_id, id, prepared->vector.data(),
                  MetaFor(out->content_type, out->archived, out->superseded_by.has_value()));
    NoteVector(out->project_id, id, true);
  } else if (prepared) {
    index_.Remove(out->project_id, id);
    NoteVector(out->project_id, id, false);
    if (missing_vector_listener_) missing_vector_listener_();
  } else {
    index_.SetMeta(out->project_id, id,
                   MetaFor(out->content_type, out->archived, out->superseded_by.has_value()));
  }
  NoteOwnChanges(logged->first, logged->second);
  return *out;
}

// 4096-byte pages: files under 16 MiB are never vacuumed.
constexpr int64_t kVacuumMinPages = 4096;

Result<RetentionResult> MemoryService::ApplyRetention(const RetentionPolicy& policy,
                                                      bool optimize) {
  RetentionResult out;
  std::string cutoff = FormatTimestamp(NowMillis() - int64_t{policy.max_age_days} * 86'400'000);
  std::vector<int64_t> stale;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s,
                        c.Prepare("SELECT id FROM semantic_memory WHERE archived = 0 AND pinned = 0"
                                  " AND superseded_by IS NULL AND relevance_score <= ?"
                                  " AND created_at < ?2 AND coalesce(last_accessed_at, '') < ?2"
                                  " ORDER BY id"));
    s.Bind(1, policy.max_relevance).Bind(2, cutoff);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      stale.push_back(s.Int(0));
    }
    return Status::Ok();
  }));
  for (int64_t id : stale) {
    auto archived = Forget(id);
    if (!archived.ok() && archived.status().code() != StatusCode::kNotFound) {
      return archived.status();
    }
    if (archived.ok()) ++out.archived;
  }
  if (out.archived > 0 || optimize) {
    DS_RETURN_IF_ERROR(db_.Write([](Connection& c) {
      return c.Exec("INSERT INTO memory_fts(memory_fts) VALUES('optimize')");
    }));
    out.fts_optimized = true;
  }
  // VACUUM only pays when much of the file is free pages; it holds the write
  // lock while it copies, so small or dense files are left alone.
  int64_t pages = 0, free_pages = 0;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt p, c.Prepare("PRAGMA page_count"));
    DS_ASSIGN_OR_RETURN(bool row, p.Step());
    if (row) pages = p.Int(0);
    DS_ASSIGN_OR_RETURN(Stmt f, c.Prepare("PRAGMA freelist_count"));
    DS_ASSIGN_OR_RETURN(bool frow, f.Step());
    if (frow) free_pages = f.Int(0);
    return Status::Ok();
  }));
  if (pages >= kVacuumMinPages && free_pages * 4 >= pages) {
    DS_RETURN_IF_ERROR(db_.WithWriter([](Connection& c) { return c.Exec("VACUUM"); }));
    out.vacuumed = true;
  }
  return out;
}

Result<Memory> MemoryService::Forget(int64_t id) {
  MemoryPatch p;
  p.archived = true;
  return Update(id, p);
}

Status MemoryService::Delete(int64_t id) {
  Memory deleted;
  struct Released {
    int64_t id;
    std::string content_type;
    bool archived;
  };
  std::vector<Released> released;  // older snapshots this one superseded
  auto logged = WriteLogged([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(deleted, LoadMemory(c, id));
    DS_ASSIGN_OR_RETURN(Stmt olds, c.Prepare("SELECT id, content_type, archived FROM "
                                             "semantic_memory WHERE superseded_by = ?"));
    olds.Bind(1, id);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, olds.Step());
      if (!row) break;
      released.push_back({olds.Int(0), olds.Text(1), olds.Int(2) != 0});
    }
    if (deleted.superseded_by) {
      // A middle snapshot: older ones now point at the one that replaced it,
      // so the chain keeps a single current snapshot.
      DS_ASSIGN_OR_RETURN(Stmt relink, c.Prepare("UPDATE semantic_memory SET superseded_by = ?"
                                                 " WHERE superseded_by = ?"));
      relink.Bind(1, *deleted.superseded_by).Bind(2, id);
      DS_RETURN_IF_ERROR(relink.Run());
      released.clear();
    }
    // Otherwise the foreign key (ON DELETE SET NULL) makes them current again.
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM semantic_memory WHERE id = ?"));
    s.Bind(1, id);
    return s.Run();
  });
  if (!logged.ok()) return logged.status();
  index_.Remove(deleted.project_id, id);
  NoteVector(deleted.project_id, id, true);
  if (fallback_index_) fallback_index_->Remove(deleted.project_id, id);
  for (const auto& r : released) {
    index_.SetMeta(deleted.project_id, r.id, MetaFor(r.content_type, r.archived, false));
  }
  NoteOwnChanges(logged->first, logged->second);
  return Status::Ok();
}

Result<SearchResult> MemoryService::Search(const SearchQuery& q) {
  auto t0 = std::chrono::steady_clock::now();
  DS_RETURN_IF_ERROR(SyncIndex());
  SearchResult result;
  const MemoryFilter& f = q.filter;
  size_t limit = static_cast<size_t>(std::clamp(f.limit, 1, 100));
  // Each side contributes its top `limit` to the fusion. Deeper lists let
  // weak matches found by both sides outvote a strong one-sided match
  // (measured on eval/retrieval: recall@5 0.685 at depth 50 vs 0.736 at 10).
  size_t fetch = limit;

  // Embed the query first (outside any transaction); failure degrades.
  std::optional<std::string> project_id;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(project_id, ProjectIdForRead(c, f.project));
    return Status::Ok();
  }));
  if (!project_id) return result;  // the default project, still empty
  // The model whose ranking answers: the current one once it covers the
  // partition, the previous default (hash) while re-embedding catches up.
  Embedder* qembedder = &embedder_;
  const VectorIndex* qindex = &index_;
  if (fallback_index_ && !PartitionCovered(*project_id)) {
    qembedder = fallback_embedder_.get();
    qindex = fallback_index_.get();
  }

  Vector qvec;
  bool want_vector = q.mode != SearchMode::kKeyword;
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  if (want_vector) {
    auto te = std::chrono::steady_clock::now();
    auto v = qembedder->Embed({q.query});
    result.embed_ms = ms_since(te);
    if (v.ok() && v->size() == 1 && (*v)[0].size() == static_cast<size_t>(qembedder->dim())) {
      qvec = std::move((*v)[0]);
      result.vector_model = qembedder->model();
    } else {
      result.degraded = true;
      result.degraded_reason = v.ok() ? "embedder returned no vector" : v.status().message();
    }
  }
  bool use_vector = want_vector && !qvec.empty();
  bool use_keyword = q.mode != SearchMode::kVector || result.degraded;

  std::vector<int64_t> keyword_ids;
  std::unordered_map<int64_t, double> bm25;
  std::vector<int64_t> vector_ids;
  std::unordered_map<int64_t, double> similarity;
  std::unordered_map<int64_t, Memory> rows;

  // Both reads unmapped: a search touches scattered rows, which mapped would
  // stay resident once per reader connection (Database::ReadUnmapped).
  DS_RETURN_IF_ERROR(db_.ReadUnmapped([&](Connection& c) -> Status {
    FilterSql fs = BuildFilter(f, *project_id);
    // Filters the in-memory indexes cannot apply themselves (the partition,
    // content types and liveness they can): the ids passing them.
    std::unordered_set<int64_t> allowed;
    std::function<bool(int64_t)> accept;
    if (NeedsIdFilter(f) && (use_vector || (use_keyword && keywords_))) {
      DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT m.id FROM semantic_memory m WHERE" + fs.where));
      int i = 1;
      for (const auto& a : fs.args) s.Bind(i++, a);
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        allowed.insert(s.Int(0));
      }
      accept = [&allowed](int64_t id) { return allowed.count(id) > 0; };
    }
    auto tk = std::chrono::steady_clock::now();
    if (use_keyword && keywords_) {
      DS_ASSIGN_OR_RETURN(auto hits,
                          keywords_->Search(*project_id, q.query, fetch, TypeMask(f.content_types),
                                            f.include_archived, accept));
      for (const auto& h : hits) {
        keyword_ids.push_back(h.memory_id);
        bm25[h.memory_id] = h.bm25;
      }
    } else if (use_keyword) {
      std::vector<std::string> terms = QueryTerms(q.query);
      DS_ASSIGN_OR_RETURN(std::vector<int64_t> df, TermFrequencies(c, terms));
      KeywordQuery kq = SelectTerms(terms, df);
      if (!kq.match.empty()) {
        // Stage 1: rank inside FTS5 alone (its own sorter, no per-match join)
        // and filter a top slice; joining every match before LIMIT dominated
        // search time. Stage 2, only when the slice may have left matches
        // out (more postings than the slice) and the filters rejected too
        // much of it: the exact joined query.
        const size_t slice = KeywordSlice(fetch, *project_id);
        // Even the rarest term matches more rows than the budget: score only
        // its newest kPostingBudget matches (FTS5 walks rowids in order
        // without scoring, so finding the cut is cheap).
        int64_t after_rowid = 0;
        if (kq.postings > kPostingBudget) {
          DS_ASSIGN_OR_RETURN(Stmt cut, c.Prepare("SELECT rowid FROM memory_fts WHERE memory_fts"
                                                  " MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?"));
          cut.Bind(1, kq.match).Bind(2, kPostingBudget);
          DS_ASSIGN_OR_RETURN(bool row, cut.Step());
          if (row) {
            after_rowid = cut.Int(0);
            kq.postings = kPostingBudget;
          }
        }
        DS_ASSIGN_OR_RETURN(
            Stmt s,
            c.Prepare("SELECT m.id, t.score FROM (SELECT rowid AS id, bm25(memory_fts) AS score"
                      " FROM memory_fts WHERE memory_fts MATCH ? AND rowid > ? ORDER BY score"
                      " LIMIT ?) t JOIN semantic_memory m ON m.id = t.id WHERE" +
                      fs.where + " ORDER BY t.score LIMIT ?"));
        int i = 1;
        s.Bind(i++, kq.match);
        s.Bind(i++, after_rowid);
        s.Bind(i++, static_cast<int64_t>(slice));
        for (const auto& a : fs.args) s.Bind(i++, a);
        s.Bind(i++, static_cast<int64_t>(fetch));
        size_t seen = 0;
        for (;;) {
          DS_ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) break;
          keyword_ids.push_back(s.Int(0));
          bm25[s.Int(0)] = s.Double(1);
          ++seen;
        }
        if (seen < fetch && kq.postings > static_cast<int64_t>(slice)) {
          keyword_ids.clear();
          bm25.clear();
          DS_ASSIGN_OR_RETURN(Stmt full,
                              c.Prepare("SELECT m.id, bm25(memory_fts) AS score FROM memory_fts"
                                        " JOIN semantic_memory m ON m.id = memory_fts.rowid"
                                        " WHERE memory_fts MATCH ? AND memory_fts.rowid > ? AND" +
                                        fs.where + " ORDER BY score LIMIT ?"));
          int j = 1;
          full.Bind(j++, kq.match);
          full.Bind(j++, after_rowid);
          for (const auto& a : fs.args) full.Bind(j++, a);
          full.Bind(j++, static_cast<int64_t>(fetch));
          for (;;) {
            DS_ASSIGN_OR_RETURN(bool row, full.Step());
            if (!row) break;
            keyword_ids.push_back(full.Int(0));
            bm25[full.Int(0)] = full.Double(1);
          }
        }
      }
    }
    result.keyword_ms = use_keyword ? ms_since(tk) : 0;
    auto tv = std::chrono::steady_clock::now();
    if (use_vector) {
      auto hits = qindex->Search(*project_id, qvec.data(), fetch, TypeMask(f.content_types),
                                 f.include_archived, accept);
      double floor = q.min_similarity.value_or(qembedder->NoiseFloor());
      for (const auto& h : hits) {
        if (h.similarity < floor) break;  // hits are best first
        vector_ids.push_back(h.memory_id);
        similarity[h.memory_id] = h.similarity;
      }
    }
    result.vector_ms = use_vector ? ms_since(tv) : 0;
    return Status::Ok();
  }));

  auto tf = std::chrono::steady_clock::now();
  std::vector<FusedHit> fused;
  if (use_vector && use_keyword) {
    fused = FuseRrf(keyword_ids, vector_ids, q.keyword_weight,
                    q.vector_weight.value_or(qembedder->FusionWeight()));
  } else if (use_vector) {
    fused = FuseRrf({}, vector_ids, 0, 1);
  } else {
    fused = FuseRrf(keyword_ids, {}, 1, 0);
  }
  bool boosted = q.importance_boost > 0 || q.recency_boost > 0;
  // Boosts may reorder the fused list, so keep every candidate until applied.
  if (!boosted && fused.size() > limit) fused.resize(limit);

  if (!fused.empty()) {
    std::string ids = "[";
    for (size_t i = 0; i < fused.size(); ++i) ids += (i ? "," : "") + std::to_string(fused[i].id);
    ids += "]";
    DS_RETURN_IF_ERROR(db_.ReadUnmapped([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kMemoryCols +
                                            " FROM semantic_memory m WHERE m.id IN"
                                            " (SELECT value FROM json_each(?))"));
      s.Bind(1, ids);
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        Memory m = ReadMemory(s);
        rows.emplace(m.id, std::move(m));
      }
      return Status::Ok();
    }));
  }
  if (boosted) {
    int64_t now_ms = NowMillis();
    for (auto& fh : fused) {
      auto it = rows.find(fh.id);
      if (it == rows.end()) continue;
      const Memory& m = it->second;
      double factor =
          1.0 + q.importance_boost * (2.0 * (m.relevance_score - 0.5) + (m.pinned ? 1 : 0));
      if (q.recency_boost > 0) {
        double age_days = 0;
        if (auto created = ParseTimestamp(m.created_at)) {
          age_days = std::max<double>(0, static_cast<double>(now_ms - *created) / 86400000.0);
        }
        factor *= 1.0 + q.recency_boost * std::exp2(-age_days / q.recency_half_life_days);
      }
      fh.score *= std::max(factor, 0.0);
    }
    std::sort(fused.begin(), fused.end(), [](const FusedHit& a, const FusedHit& b) {
      if (a.score != b.score) return a.score > b.score;
      return a.id > b.id;
    });
    if (fused.size() > limit) fused.resize(limit);
  }
  std::vector<int64_t> returned;
  for (const auto& fh : fused) {
    auto it = rows.find(fh.id);
    if (it == rows.end()) continue;  // deleted between the two reads
    const Memory& m = it->second;
    // A ranking may be a moment stale (another process's write not replayed
    // yet, or the transitional fallback index): re-check the row itself.
    if (!f.include_archived && (m.archived || m.superseded_by)) continue;
    if (!f.content_types.empty() && std::find(f.content_types.begin(), f.content_types.end(),
                                              m.content_type) == f.content_types.end()) {
      continue;
    }
    SearchHit hit;
    hit.memory = std::move(it->second);
    hit.score = fh.score;
    hit.keyword_rank = fh.keyword_rank;
    hit.vector_rank = fh.vector_rank;
    if (auto s = similarity.find(fh.id); s != similarity.end()) hit.similarity = s->second;
    if (auto b = bm25.find(fh.id); b != bm25.end()) hit.bm25 = b->second;
    returned.push_back(fh.id);
    result.hits.push_back(std::move(hit));
  }
  if (q.record_access && !returned.empty()) {
    std::string now = NowTimestamp();
    {
      std::lock_guard<std::mutex> lock(access_mu_);
      for (int64_t id : returned) ++pending_access_[id];
      pending_accessed_at_ = now;
    }
    for (auto& h : result.hits) {
      h.memory.access_count += 1;
      h.memory.last_accessed_at = now;
    }
  }
  result.fusion_ms = ms_since(tf);
  result.took_ms =
      std::round(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() *
          1000) /
      1000;
  if (search_listener_) search_listener_(result);
  return result;
}

Status MemoryService::FlushAccessCounts() {
  std::unordered_map<int64_t, int64_t> pending;
  std::string at;
  {
    std::lock_guard<std::mutex> lock(access_mu_);
    if (pending_access_.empty()) return Status::Ok();
    pending.swap(pending_access_);
    at = pending_accessed_at_;
  }
  Status st = db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("UPDATE semantic_memory SET access_count = access_count"
                                          " + ?2, last_accessed_at = ?3 WHERE id = ?1"));
    for (const auto& [id, n] : pending) {
      s.Reset();
      s.Bind(1, id).Bind(2, n).Bind(3, at);
      DS_RETURN_IF_ERROR(s.Run());
    }
    return Status::Ok();
  });
  if (!st.ok()) {
    // Keep them for the next flush rather than lose them.
    std::lock_guard<std::mutex> lock(access_mu_);
    for (const auto& [id, n] : pending) pending_access_[id] += n;
    if (pending_accessed_at_.empty()) pending_accessed_at_ = at;
  }
  return st;
}

Result<ContextResult> MemoryService::Context(const ContextQuery& q) {
  SearchQuery sq;
  sq.query = q.query;
  sq.filter = q.filter;
  sq.filter.limit = std::max(q.filter.limit, 20);
  DS_ASSIGN_OR_RETURN(SearchResult sr, Search(sq));
  ContextResult out = AssembleContext(sr.hits, q.token_budget, q.diversity);
  out.degraded = sr.degraded;
  return out;
}

Result<MemoryStats> MemoryService::Stats(const std::optional<std::string>& project) {
  MemoryStats st;
  st.model = embedder_.model();
  st.dim = embedder_.dim();
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, project));
    if (!project_id) return Status::Ok();
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(
            "SELECT count(*), coalesce(sum(archived), 0), coalesce(sum(superseded_by IS NOT NULL), "
            "0),"
            " (SELECT count(*) FROM memory_vectors v JOIN semantic_memory x ON x.id = v.memory_id"
            "  WHERE x.project_id = ?1 AND v.model = ?2)"
            " FROM semantic_memory WHERE project_id = ?1"));
    s.Bind(1, *project_id).Bind(2, embedder_.model());
    DS_RETURN_IF_ERROR(s.Step().status());
    st.memories = s.Int(0);
    st.archived = s.Int(1);
    st.superseded = s.Int(2);
    st.vectors = s.Int(3);
    st.indexed = static_cast<int64_t>(index_.Size(*project_id));
    st.vector_bytes = st.indexed * embedder_.dim() * static_cast<int64_t>(sizeof(float));
    return Status::Ok();
  }));
  return st;
}

Result<int64_t> MemoryService::Reembed(int batch_size, const std::atomic<bool>* stop,
                                       bool* complete) {
  int64_t total = 0;
  if (complete) *complete = false;
  for (;;) {
    if (stop && stop->load()) return total;
    struct Row {
      int64_t id;
      std::string project_id, text, content_type;
      bool archived, superseded;
    };
    std::vector<Row> rows;
    DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(
          Stmt s,
          c.Prepare("SELECT m.id, m.project_id, m.content, m.keywords, m.content_type, m.archived,"
                    " m.superseded_by IS NOT NULL FROM semantic_memory m"
                    " WHERE NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.memory_id = m.id"
                    "   AND v.model = ? AND v.dim = ?) ORDER BY m.id LIMIT ?"));
      s.Bind(1, embedder_.model()).Bind(2, static_cast<int64_t>(embedder_.dim()));
      s.Bind(3, static_cast<int64_t>(batch_size));
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        rows.push_back({s.Int(0), s.Text(1), EmbeddingText(s.Text(2), DecodeStringList(s.Text(3))),
                        s.Text(4), s.Int(5) != 0, s.Int(6) != 0});
      }
      return Status::Ok();
    }));
    if (rows.empty()) {
      if (complete) *complete = true;
      return total;
    }
    std::vector<std::string> texts;
    for (const auto& r : rows) texts.push_back(r.text);
    DS_ASSIGN_OR_RETURN(auto vectors, embedder_.Embed(texts));
    if (vectors.size() != rows.size()) return Status::Internal("embedder returned a short batch");
    auto logged = WriteLogged([&](Connection& c) -> Status {
      for (size_t i = 0; i < rows.size(); ++i) {
        DS_RETURN_IF_ERROR(WriteVector(c, rows[i].id, embedder_.model(), vectors[i]));
      }
      return Status::Ok();
    });
    if (!logged.ok()) return logged.status();
    for (size_t i = 0; i < rows.size(); ++i) {
      index_.Upsert(rows[i].project_id, rows[i].id, vectors[i].data(),
                    MetaFor(rows[i].content_type, rows[i].archived, rows[i].superseded));
      NoteVector(rows[i].project_id, rows[i].id, true);
    }
    NoteOwnChanges(logged->first, logged->second);
    total += static_cast<int64_t>(rows.size());
  }
}

}  // namespace ds::memory
