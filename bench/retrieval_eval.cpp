// Retrieval quality on the frozen evaluation set of eval/retrieval/ (see its
// README): loads the memories into a fresh temporary database, then runs every
// query in keyword, vector and hybrid mode (limit 10, no access recording) and
// prints recall@5, recall@10, MRR@10 and recall@5 per query kind.
//
//   bench_retrieval_eval [eval-dir] [--per-query] [--hits]
//
// eval-dir defaults to <source>/eval/retrieval. --per-query also prints each
// query's recall@5 and first relevant rank per mode; --hits prints each
// query's top 10 memory keys per mode (relevant ones marked with *). Exits 0 after printing
// (non-zero only when the set cannot be loaded or a search fails); the quality
// gate itself is asserted by tests/unit/retrieval_eval_test.cpp.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "retrieval_eval_lib.h"

#ifndef DEVSTREAM_SOURCE_DIR
#define DEVSTREAM_SOURCE_DIR "."
#endif

namespace re = ds::retrieval_eval;
using ds::memory::SearchMode;

int main(int argc, char** argv) {
  std::filesystem::path dir = std::filesystem::path(DEVSTREAM_SOURCE_DIR) / "eval" / "retrieval";
  bool per_query = false, hits = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--per-query") {
      per_query = true;
    } else if (a == "--hits") {
      hits = true;
    } else {
      dir = a;
    }
  }

  auto mems = re::LoadMemories(dir / "memories.jsonl");
  if (!mems.ok()) {
    std::fprintf(stderr, "retrieval_eval: %s\n", mems.status().message().c_str());
    return 2;
  }
  auto queries = re::LoadQueries(dir / "queries.jsonl");
  if (!queries.ok()) {
    std::fprintf(stderr, "retrieval_eval: %s\n", queries.status().message().c_str());
    return 2;
  }
  auto index = re::EvalIndex::Build(*mems);
  if (!index.ok()) {
    std::fprintf(stderr, "retrieval_eval: indexing failed: %s\n", index.status().message().c_str());
    return 2;
  }

  std::vector<re::ModeMetrics> rows;
  for (SearchMode mode : {SearchMode::kKeyword, SearchMode::kVector, SearchMode::kHybrid}) {
    auto m = re::Evaluate(**index, *queries, mode);
    if (!m.ok()) {
      std::fprintf(stderr, "retrieval_eval: %s search failed: %s\n", re::ModeName(mode).c_str(),
                   m.status().message().c_str());
      return 2;
    }
    rows.push_back(std::move(m).value());
  }

  std::printf("retrieval eval (%s)\n", dir.string().c_str());
  std::printf(
      "memories: %zu (redactions on store: %d)   queries: %zu   paraphrase queries "
      "sharing no word with their targets: %d\n",
      (*index)->size(), (*index)->redactions(), queries->size(),
      re::CountDisjointParaphrases(*mems, *queries));
  std::printf("embedder: %s   search limit 10, record_access=false\n\n",
              ds::memory::HashEmbedder().model().c_str());
  std::printf("%s\n", re::FormatTable(rows).c_str());

  const auto& kw = rows[0];
  const auto& vec = rows[1];
  const auto& hy = rows[2];
  double best_single = std::max(kw.recall5, vec.recall5);
  std::printf("gate: hybrid recall@5 %.3f >= max(keyword %.3f, vector %.3f) = %.3f: %s\n",
              hy.recall5, kw.recall5, vec.recall5, best_single,
              hy.recall5 >= best_single - 1e-9 ? "PASS" : "FAIL");

  if (per_query) {
    std::printf("\nper query: recall@5 and first relevant rank (- = not in top 10)\n");
    std::printf("%-5s %-10s  %-14s %-14s %-14s query\n", "id", "kind", "keyword", "vector",
                "hybrid");
    for (size_t i = 0; i < queries->size(); ++i) {
      std::printf("%-5s %-10s ", (*queries)[i].id.c_str(), (*queries)[i].kind.c_str());
      for (const auto& r : rows) {
        const auto& o = r.outcomes[i];
        char rank[16];
        if (o.rr10 > 0) {
          std::snprintf(rank, sizeof rank, "%d", static_cast<int>(1.0 / o.rr10 + 0.5));
        } else {
          std::snprintf(rank, sizeof rank, "-");
        }
        std::printf(" %.2f r=%-7s", o.recall5, rank);
      }
      std::printf(" %s\n", (*queries)[i].query.substr(0, 70).c_str());
    }
  }
  if (hits) {
    std::printf("\ntop 10 per query and mode (* = relevant)\n");
    for (size_t i = 0; i < queries->size(); ++i) {
      const auto& q = (*queries)[i];
      std::printf("%s [%s] %s\n", q.id.c_str(), q.kind.c_str(), q.query.c_str());
      for (const auto& r : rows) {
        std::printf("  %-8s", r.mode.c_str());
        for (const auto& key : r.outcomes[i].ranked) {
          bool rel = std::find(q.relevant.begin(), q.relevant.end(), key) != q.relevant.end();
          std::printf(" %s%s", key.c_str(), rel ? "*" : "");
        }
        std::printf("\n");
      }
    }
  }
  return 0;
}
