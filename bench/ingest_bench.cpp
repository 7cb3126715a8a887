// Batch ingest and in-process hybrid search over a fresh, migrated database:
//   - 50,000 generated developer-style memories (200-800 bytes each, seven
//     content types, built from templates and word lists with a fixed seed,
//     all distinct so dedup never short-circuits a write) stored through
//     MemoryService::StoreBatch in batches of 500 (target >= 5,000 memories/s);
//   - then semantic_memory, memory_fts and memory_vectors must each hold
//     50,000 rows (plus the FTS5 index's own docsize rows and its
//     integrity-check), and the vector index 50,000 entries;
//   - then 200 hybrid MemoryService::Search calls (record_access = false):
//     median and p99 latency.
// The embedding share of the ingest (HashEmbedder alone over the same texts)
// is timed separately, to show what bounds the write path; so is the batch
// that takes the partition to VectorIndex's hnsw_threshold (50,000 by default,
// reached by the last batch here), which queues the HNSW build on a background thread.
// Exit status 1 on errors or wrong counts, never on a missed target.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "bench_util.h"
#include "dev_corpus.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "store/database.h"
#include "store/migrations.h"

namespace {

using ds::bench::GenerateMemories;
using ds::bench::GenerateQueries;
using ds::bench::NowMs;
using ds::bench::Percentile;
using ds::bench::Rng;

constexpr size_t kMemories = 50000;
constexpr size_t kBatch = 500;
constexpr size_t kQueries = 200;
constexpr double kTargetPerSecond = 5000;

int Fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  const auto machine = ds::bench::DescribeMachine();
  std::printf(
      "ingest_bench: %zu memories via MemoryService::StoreBatch (batches of %zu), then %zu"
      " hybrid searches; HashEmbedder 384 dims\n",
      kMemories, kBatch, kQueries);
  ds::bench::PrintMachine(machine);

  double t0 = NowMs();
  auto inputs = GenerateMemories(kMemories);
  size_t bytes = 0, min_len = SIZE_MAX, max_len = 0;
  for (const auto& in : inputs) {
    bytes += in.content.size();
    min_len = std::min(min_len, in.content.size());
    max_len = std::max(max_len, in.content.size());
  }
  std::printf("generated %zu distinct memories in %.1f s: %zu..%zu bytes, mean %.0f\n",
              inputs.size(), (NowMs() - t0) / 1000, min_len, max_len,
              static_cast<double>(bytes) / static_cast<double>(inputs.size()));
  std::printf("example (%s):\n  %s\n", inputs[1].content_type.c_str(), inputs[1].content.c_str());

  auto dir =
      std::filesystem::temp_directory_path() / ("ds_ingest_bench_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string path = (dir / "ingest.db").string();
  auto db = ds::Database::Open(path, {});
  if (!db.ok()) return Fail("open: " + db.status().ToString());
  ds::Migrator migrator(**db);
  if (auto up = migrator.Up(); !up.ok()) return Fail("migrate: " + up.status().ToString());

  ds::memory::HashEmbedder embedder;
  ds::memory::MemoryService service(**db, embedder);
  if (auto st = service.LoadIndex(); !st.ok()) return Fail("LoadIndex: " + st.ToString());

  // Ingest.
  std::vector<double> batch_ms;
  size_t stored = 0, deduplicated = 0;
  const double ingest_start = NowMs();
  for (size_t i = 0; i < inputs.size(); i += kBatch) {
    std::vector<ds::memory::MemoryInput> batch(
        inputs.begin() + static_cast<std::ptrdiff_t>(i),
        inputs.begin() + static_cast<std::ptrdiff_t>(std::min(i + kBatch, inputs.size())));
    double t = NowMs();
    auto res = service.StoreBatch(batch);
    batch_ms.push_back(NowMs() - t);
    if (!res.ok()) return Fail("StoreBatch: " + res.status().ToString());
    for (const auto& r : *res) (r.deduplicated ? deduplicated : stored) += 1;
  }
  const double ingest_s = (NowMs() - ingest_start) / 1000;
  const double per_second = static_cast<double>(stored) / ingest_s;
  // The batch whose rows take the partition to VectorIndex's hnsw_threshold
  // also builds the HNSW graph inside StoreBatch: reported on its own.
  const size_t threshold = ds::memory::VectorIndexOptions{}.hnsw_threshold;
  std::optional<size_t> promotion_batch;
  if (threshold > 0 && threshold <= kMemories) promotion_batch = (threshold - 1) / kBatch;
  double flat_ms = 0;
  size_t flat_rows = 0;
  for (size_t b = 0; b < batch_ms.size(); ++b) {
    if (promotion_batch && b >= *promotion_batch) continue;
    flat_ms += batch_ms[b];
    flat_rows += std::min(kBatch, kMemories - b * kBatch);
  }

  // The embedding share: the same texts (content + keywords) through the embedder alone.
  double embed_s = 0;
  for (size_t i = 0; i < inputs.size(); i += kBatch) {
    std::vector<std::string> texts;
    for (size_t j = i; j < std::min(i + kBatch, inputs.size()); ++j) {
      std::string t = inputs[j].content;
      for (const auto& k : inputs[j].keywords) t += "\n" + k;
      texts.push_back(std::move(t));
    }
    double t = NowMs();
    auto v = embedder.Embed(texts);
    embed_s += (NowMs() - t) / 1000;
    if (!v.ok()) return Fail("Embed: " + v.status().ToString());
  }

  // Verify the three stores agree.
  int64_t n_memory = -1, n_fts = -1, n_fts_docs = -1, n_vectors = -1;
  auto st = (*db)->Read([&](ds::Connection& c) -> ds::Status {
    auto count = [&](const char* sql, int64_t* out) -> ds::Status {
      DS_ASSIGN_OR_RETURN(ds::Stmt s, c.Prepare(sql));
      DS_RETURN_IF_ERROR(s.Step().status());
      *out = s.Int(0);
      return ds::Status::Ok();
    };
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM semantic_memory", &n_memory));
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_fts", &n_fts));
    // memory_fts is an external-content table: count(*) above reads
    // semantic_memory; the docsize table has one row per document actually indexed.
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_fts_docsize", &n_fts_docs));
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_vectors", &n_vectors));
    return ds::Status::Ok();
  });
  if (!st.ok()) return Fail("counting: " + st.ToString());
  t0 = NowMs();
  st = (*db)->Write([](ds::Connection& c) {
    return c.Exec("INSERT INTO memory_fts(memory_fts) VALUES('integrity-check')");
  });
  const double integrity_s = (NowMs() - t0) / 1000;
  auto stats = service.Stats(std::nullopt);
  if (!stats.ok()) return Fail("Stats: " + stats.status().ToString());
  const auto expect = static_cast<int64_t>(kMemories);
  const bool counts_ok = n_memory == expect && n_fts == expect && n_fts_docs == expect &&
                         n_vectors == expect && stats->indexed == expect && deduplicated == 0 &&
                         st.ok();
  std::error_code ec;
  auto db_size = std::filesystem::file_size(path, ec);
  auto wal_size = std::filesystem::file_size(path + "-wal", ec);

  // Hybrid search.
  auto queries = GenerateQueries(kQueries);
  auto run = [&](const std::string& text, size_t* hits) -> ds::Status {
    ds::memory::SearchQuery q;
    q.query = text;
    q.filter.limit = 10;
    q.mode = ds::memory::SearchMode::kHybrid;
    q.record_access = false;
    auto r = service.Search(q);
    if (!r.ok()) return r.status();
    if (r->degraded) return ds::Status::Internal("degraded search: " + r->degraded_reason);
    *hits = r->hits.size();
    return ds::Status::Ok();
  };
  size_t hits = 0, empty = 0;
  for (size_t w = 0; w < 3; ++w) {
    if (auto s = run(queries[w], &hits); !s.ok()) return Fail("Search: " + s.ToString());
  }
  std::vector<double> search_ms;
  for (const auto& q : queries) {
    double t = NowMs();
    auto s = run(q, &hits);
    search_ms.push_back(NowMs() - t);
    if (!s.ok()) return Fail("Search: " + s.ToString());
    empty += hits == 0;
  }

  std::printf("\ncounts after ingest (expect %zu each):\n", kMemories);
  std::printf(
      "  semantic_memory %lld, memory_fts %lld (docsize %lld), memory_vectors %lld,"
      " vector index %lld; deduplicated %zu; FTS integrity-check %s (%.1f s)  -> %s\n",
      static_cast<long long>(n_memory), static_cast<long long>(n_fts),
      static_cast<long long>(n_fts_docs), static_cast<long long>(n_vectors),
      static_cast<long long>(stats->indexed), deduplicated, st.ok() ? "ok" : "FAILED", integrity_s,
      counts_ok ? "OK" : "MISMATCH");
  std::printf("database %.0f MB + WAL %.0f MB\n", static_cast<double>(db_size) / 1e6,
              static_cast<double>(wal_size) / 1e6);

  std::printf("\n%-52s %12s\n", "", "figure");
  std::printf("%-52s %12.0f   (target >= %.0f/s: %s)\n",
              "ingest: memories/s (StoreBatch, 500 per batch)", per_second, kTargetPerSecond,
              ds::bench::Verdict(per_second >= kTargetPerSecond));
  std::printf("%-52s %12.2f\n", "ingest: total s", ingest_s);
  if (flat_rows > 0) {
    std::printf("%-52s %12.0f   (the first %zu memories, flat index)\n",
                "ingest: memories/s before the HNSW promotion", 1000 * flat_rows / flat_ms,
                flat_rows);
  }
  if (promotion_batch && *promotion_batch < batch_ms.size()) {
    std::printf("%-52s %12.1f   (batch %zu reaches hnsw_threshold %zu: builds the graph)\n",
                "ingest: promotion batch ms", batch_ms[*promotion_batch], *promotion_batch + 1,
                threshold);
  }
  std::printf("%-52s %12.1f\n", "ingest: batch median ms", Percentile(batch_ms, 50));
  std::printf("%-52s %12.1f\n", "ingest: batch p99 ms", Percentile(batch_ms, 99));
  std::printf("%-52s %12.2f   (%.0f texts/s; ~%.0f%% of the flat-phase time)\n",
              "embedding alone (HashEmbedder, same texts): s", embed_s,
              static_cast<double>(kMemories) / embed_s,
              flat_ms > 0
                  ? 100 * embed_s * static_cast<double>(flat_rows) / kMemories / (flat_ms / 1000)
                  : 0.0);
  std::printf("%-52s %12.2f\n", "hybrid search: median ms (in-process, limit 10)",
              Percentile(search_ms, 50));
  std::printf("%-52s %12.2f\n", "hybrid search: p99 ms", Percentile(search_ms, 99));
  std::printf("%-52s %12zu\n", "hybrid search: queries with no hit", empty);
  std::printf("(machine shared with other work: figures are from one run, noisy)\n");

  if (!counts_ok) return Fail("row counts disagree after ingest");
  return 0;
}
