// Approximate nearest neighbours at scale, on the data the product sees:
//   - 200,000 generated developer-style memory texts embedded with the hash
//     embedder (384 dims) — not synthetic clusters — and 1,000 held-out query
//     texts from the same generator with another seed;
//   - ground truth from the exact SIMD scan over the same vectors (also the
//     reference latency: HNSW must beat it by a wide margin to be worth it);
//   - HNSW (hnswlib via VectorIndex, M 16, ef_construction 200): build time,
//     then recall@10 and single-thread median/p99 latency at several ef_search
//     values (targets: recall@10 >= 0.95 with median <= 1 ms at the default);
//   - start-up from the sidecar graph (target <= 2 s).
// HNSW_BENCH_GRAPH=<file>: save the built graph there, and on later runs load
// it instead of building (to iterate on search without the minutes of build).
// Exit status 1 only on errors.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bench_util.h"
#include "dev_corpus.h"
#include "memory/embedder.h"
#include "memory/vector_index.h"

namespace {

using ds::bench::NowMs;
using ds::bench::Percentile;
using ds::memory::VectorIndex;
using ds::memory::VectorIndexOptions;

constexpr size_t kCorpus = 200000;
constexpr size_t kQueries = 1000;
constexpr size_t kK = 10;

std::vector<std::vector<float>> Embed(const std::vector<std::string>& texts) {
  ds::memory::HashEmbedder e;
  auto r = e.Embed(texts);
  return r.ok() ? std::move(r).value() : std::vector<std::vector<float>>{};
}

}  // namespace

int main(int argc, char** argv) {
  auto machine = ds::bench::DescribeMachine();
  ds::bench::PrintMachine(machine);
  std::printf("hnsw_bench: %zu hash-embedded memory texts (384 d), %zu held-out queries, k=%zu\n",
              kCorpus, kQueries, kK);

  double t0 = NowMs();
  std::vector<std::string> texts;
  for (auto& m : ds::bench::GenerateMemories(kCorpus, 424242))
    texts.push_back(std::move(m.content));
  std::vector<std::string> query_texts;
  for (auto& m : ds::bench::GenerateMemories(kQueries, 777))
    query_texts.push_back(std::move(m.content));
  auto vecs = Embed(texts);
  auto queries = Embed(query_texts);
  if (vecs.size() != kCorpus || queries.size() != kQueries) {
    std::fprintf(stderr, "error: embedding failed\n");
    return 1;
  }
  std::printf("generated and embedded in %.1f s\n", (NowMs() - t0) / 1000);

  // Exact reference.
  VectorIndexOptions flat_opts;
  flat_opts.hnsw_threshold = SIZE_MAX;
  VectorIndex flat(384, flat_opts);
  for (size_t i = 0; i < vecs.size(); ++i)
    flat.Upsert("p", static_cast<int64_t>(i + 1), vecs[i].data(), {});
  std::vector<std::vector<int64_t>> truth(kQueries);
  std::vector<double> exact_ms;
  for (size_t q = 0; q < kQueries; ++q) {
    double s = NowMs();
    auto hits = flat.Search("p", queries[q].data(), kK, 0, false);
    exact_ms.push_back(NowMs() - s);
    for (const auto& h : hits) truth[q].push_back(h.memory_id);
  }

  // Build, or reuse the graph a previous run saved at $HNSW_BENCH_GRAPH (for
  // iterating on search: the build takes minutes; the corpus is the same
  // seeded one each run, but the file is trusted, not checked).
  VectorIndexOptions opts;  // the product's defaults, or [M] [ef_construction] from argv
  if (argc > 1) opts.hnsw.m = std::atoi(argv[1]);
  if (argc > 2) opts.hnsw.ef_construction = std::atoi(argv[2]);
  const char* cached = std::getenv("HNSW_BENCH_GRAPH");
  std::string dir =
      std::filesystem::temp_directory_path() / ("ds_hnsw_bench_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = dir + "/p.hnsw";
  double build_s = -1;
  if (cached != nullptr && *cached != '\0' && std::filesystem::exists(cached)) {
    path = cached;
  } else {
    VectorIndex hnsw(384, opts);
    double b0 = NowMs();
    hnsw.BeginBulkLoad();
    for (size_t i = 0; i < vecs.size(); ++i)
      hnsw.Upsert("p", static_cast<int64_t>(i + 1), vecs[i].data(), {});
    hnsw.EndBulkLoad();
    hnsw.WaitForPromotions();
    build_s = (NowMs() - b0) / 1000;
    if (!hnsw.IsHnsw("p")) {
      std::fprintf(stderr, "error: partition was not promoted to HNSW\n");
      return 1;
    }
    if (cached != nullptr && *cached != '\0') path = cached;
    if (!hnsw.SaveGraph("p", path).ok()) {
      std::fprintf(stderr, "error: cannot save graph to %s\n", path.c_str());
      return 1;
    }
  }
  std::unordered_map<int64_t, ds::memory::VectorMeta> meta;
  for (size_t i = 0; i < vecs.size(); ++i) meta[static_cast<int64_t>(i + 1)] = {};

  if (build_s >= 0) {
    std::printf("\nHNSW build (M %d, ef_construction %d, %u threads): %.1f s; graph file %.0f MB\n",
                opts.hnsw.m, opts.hnsw.ef_construction,
                std::max(1u, std::min(4u, std::thread::hardware_concurrency())), build_s,
                static_cast<double>(std::filesystem::file_size(path)) / 1e6);
  } else {
    std::printf("\nHNSW graph reused from %s (HNSW_BENCH_GRAPH; build not measured)\n",
                path.c_str());
  }
  std::printf("\n%-10s %10s %12s %12s\n", "ef_search", "recall@10", "median ms", "p99 ms");
  std::printf("%-10s %10s %12.3f %12.3f   (exact SIMD scan, the reference)\n", "exact", "1.000",
              Percentile(exact_ms, 50), Percentile(exact_ms, 99));
  bool target_met = false;
  double load_s = 0;
  for (int ef : {32, 64, 96, 128, 200}) {
    VectorIndexOptions o = opts;
    o.hnsw.ef_search = ef;
    VectorIndex loaded(384, o);
    double l0 = NowMs();
    if (!loaded.LoadGraph("p", path, meta).ok()) {
      std::fprintf(stderr, "error: cannot load graph\n");
      return 1;
    }
    if (ef == opts.hnsw.ef_search) load_s = (NowMs() - l0) / 1000;
    std::vector<double> ms;
    double found = 0;
    for (size_t q = 0; q < kQueries; ++q) {
      double s = NowMs();
      auto hits = loaded.Search("p", queries[q].data(), kK, 0, false);
      ms.push_back(NowMs() - s);
      std::unordered_set<int64_t> got;
      for (const auto& h : hits) got.insert(h.memory_id);
      for (int64_t id : truth[q]) found += got.count(id);
    }
    double recall = found / static_cast<double>(kQueries * kK);
    bool is_default = ef == opts.hnsw.ef_search;
    if (is_default) target_met = recall >= 0.95 && Percentile(ms, 50) <= 1.0;
    std::printf("%-10d %10.3f %12.3f %12.3f%s\n", ef, recall, Percentile(ms, 50),
                Percentile(ms, 99), is_default ? "   <- default" : "");
  }
  std::printf("\ntarget recall@10 >= 0.95 and median <= 1 ms at the default ef: %s\n",
              ds::bench::Verdict(target_met));
  std::printf("start-up: load the %zu-vector graph from its sidecar: %.2f s (target <= 2 s: %s)\n",
              kCorpus, load_s, ds::bench::Verdict(load_s <= 2.0));
  std::filesystem::remove_all(dir);
  return 0;
}
