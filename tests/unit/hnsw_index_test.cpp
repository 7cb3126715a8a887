// HNSW partitions: promotion at the threshold, recall against the exact scan,
// filters, deletes, and the sidecar graph with change-log replay.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "memory/embedder.h"
#include "memory/hnsw_graph.h"
#include "memory/memory_service.h"
#include "memory/vector_index.h"
#include "test_util.h"

namespace ds::memory {
namespace {

std::vector<float> RandomUnit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> n(0, 1);
  std::vector<float> v(static_cast<size_t>(dim));
  double norm = 0;
  for (auto& x : v) {
    x = n(rng);
    norm += x * x;
  }
  for (auto& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

TEST(HnswIndexTest, PromotesAtThresholdAndKeepsRecall) {
  constexpr int kDim = 32;
  constexpr int kN = 3000;
  VectorIndexOptions opts;
  opts.hnsw_threshold = 1000;
  VectorIndex hnsw(kDim, opts);
  VectorIndexOptions flat_opts;
  flat_opts.hnsw_threshold = 1 << 30;
  VectorIndex flat(kDim, flat_opts);
  std::mt19937 rng(7);
  for (int i = 1; i <= kN; ++i) {
    auto v = RandomUnit(rng, kDim);
    VectorMeta meta;
    meta.content_type_bit = 1u << (i % 3);
    hnsw.Upsert("p", i, v.data(), meta);
    flat.Upsert("p", i, v.data(), meta);
  }
  hnsw.WaitForPromotions();  // built in the background from a snapshot
  EXPECT_TRUE(hnsw.IsHnsw("p"));
  EXPECT_FALSE(flat.IsHnsw("p"));
  EXPECT_EQ(hnsw.Size("p"), static_cast<size_t>(kN));
  double found = 0, total = 0;
  for (int q = 0; q < 50; ++q) {
    auto query = RandomUnit(rng, kDim);
    auto exact = flat.Search("p", query.data(), 10, 0, false);
    auto approx = hnsw.Search("p", query.data(), 10, 0, false);
    ASSERT_EQ(approx.size(), 10u);
    for (const auto& e : exact) {
      total += 1;
      for (const auto& a : approx) found += a.memory_id == e.memory_id;
    }
  }
  EXPECT_GE(found / total, 0.95) << "recall@10";
  // A type filter: every hit has the type, and the count is still k.
  auto query = RandomUnit(rng, kDim);
  auto typed = hnsw.Search("p", query.data(), 10, 1u << 1, false);
  ASSERT_EQ(typed.size(), 10u);
  for (const auto& h : typed) EXPECT_EQ(h.memory_id % 3, 1);
  // A very selective filter falls back to an exact scan and still answers.
  auto only = hnsw.Search("p", query.data(), 5, 0, false,
                          [](int64_t id) { return id == 42 || id == 2024; });
  ASSERT_EQ(only.size(), 2u);
  // Deletes and dead rows disappear.
  hnsw.Remove("p", only[0].memory_id);
  VectorMeta dead;
  dead.live = false;
  dead.content_type_bit = 1u << (only[1].memory_id % 3);
  hnsw.SetMeta("p", only[1].memory_id, dead);
  EXPECT_TRUE(
      hnsw.Search("p", query.data(), 5, 0, false, [](int64_t id) { return id == 42 || id == 2024; })
          .empty());
  EXPECT_EQ(hnsw.Size("p"), static_cast<size_t>(kN - 1));
}

TEST(HnswIndexTest, WritesDuringABackgroundBuildAreKept) {
  constexpr int kDim = 16;
  VectorIndexOptions opts;
  opts.hnsw_threshold = 2000;
  VectorIndex index(kDim, opts);
  std::mt19937 rng(11);
  std::vector<std::vector<float>> vecs;
  for (int i = 1; i <= 2000; ++i) {
    vecs.push_back(RandomUnit(rng, kDim));
    index.Upsert("p", i, vecs.back().data(), {});
  }
  // The build runs now; keep writing: new rows, a replaced row, a removal.
  for (int i = 2001; i <= 2100; ++i) {
    vecs.push_back(RandomUnit(rng, kDim));
    index.Upsert("p", i, vecs.back().data(), {});
  }
  auto replaced = RandomUnit(rng, kDim);
  index.Upsert("p", 5, replaced.data(), {});
  index.Remove("p", 7);
  index.WaitForPromotions();
  ASSERT_TRUE(index.IsHnsw("p"));
  EXPECT_EQ(index.Size("p"), 2099u);
  auto top = index.Search("p", vecs[2049].data(), 1, 0, false);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].memory_id, 2050);
  top = index.Search("p", replaced.data(), 1, 0, false);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].memory_id, 5);
  top = index.Search("p", vecs[6].data(), 3, 0, false);
  for (const auto& h : top) EXPECT_NE(h.memory_id, 7);
}

TEST(HnswIndexTest, FinishPromotionsAbandonsALongBuildAndStaysFlat) {
  constexpr int kDim = 64;
  constexpr int kN = 30000;  // seconds to build, far beyond the wait below
  VectorIndexOptions opts;
  opts.hnsw_threshold = 1000;
  VectorIndex index(kDim, opts);
  std::mt19937 rng(11);
  index.BeginBulkLoad();
  for (int i = 1; i <= kN; ++i) index.Upsert("p", i, RandomUnit(rng, kDim).data(), VectorMeta{});
  index.EndBulkLoad();  // queues the build
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(index.FinishPromotions(std::chrono::milliseconds(20)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(index.IsHnsw("p"));  // abandoned: still the exact flat scan
  auto query = RandomUnit(rng, kDim);
  EXPECT_EQ(index.Search("p", query.data(), 5, 0, false).size(), 5u);
  // Nothing builds afterwards either.
  index.Upsert("p", kN + 1, query.data(), VectorMeta{});
  index.WaitForPromotions();
  EXPECT_FALSE(index.IsHnsw("p"));
}

TEST(HnswIndexTest, FinishPromotionsLetsAShortBuildComplete) {
  constexpr int kDim = 16;
  VectorIndexOptions opts;
  opts.hnsw_threshold = 100;
  VectorIndex index(kDim, opts);
  std::mt19937 rng(5);
  for (int i = 1; i <= 300; ++i) index.Upsert("p", i, RandomUnit(rng, kDim).data(), VectorMeta{});
  EXPECT_TRUE(index.FinishPromotions(std::chrono::seconds(120)));
  EXPECT_TRUE(index.IsHnsw("p"));
}

TEST(HnswIndexTest, SidecarLoadsAndReplaysNewerChanges) {
  std::string path;
  auto db = ds::testing::NewMigratedDb(&path);
  ASSERT_TRUE(db);
  HashEmbedder embedder;
  VectorIndexOptions opts;
  opts.hnsw_threshold = 200;
  std::string sidecars = ds::testing::TempDir();
  std::vector<MemoryInput> inputs;
  for (int i = 0; i < 300; ++i) {
    MemoryInput in;
    in.content = "note " + std::to_string(i) + " about module" + std::to_string(i % 17) +
                 " and function handler" + std::to_string(i);
    in.content_type = "learning";
    inputs.push_back(in);
  }
  {
    MemoryService svc(*db, embedder, opts, sidecars);
    ASSERT_TRUE(svc.LoadIndex().ok());
    ASSERT_TRUE(svc.StoreBatch(inputs).ok());
    ASSERT_TRUE(svc.SaveSidecars().ok());
  }
  // Changes after the sidecar was written: a new memory and a deletion.
  int64_t added_id = 0;
  {
    VectorIndexOptions flat;
    flat.hnsw_threshold = 1 << 30;
    MemoryService other(*db, embedder, flat, ds::testing::TempDir());
    MemoryInput in;
    in.content = "zebra quagga okapi unusual words";
    in.content_type = "decision";
    auto r = other.Store(in);
    ASSERT_TRUE(r.ok());
    added_id = r->memory.id;
    ASSERT_TRUE(other.Delete(1).ok());
  }
  MemoryService svc(*db, embedder, opts, sidecars);
  ASSERT_TRUE(svc.LoadIndex().ok());
  auto stats = svc.Stats(std::nullopt);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->indexed, 300) << "300 - 1 deleted + 1 added";
  // HNSW is approximate and this memory shares no feature with the others (an
  // outlier the greedy walk may miss at a small fetch), so ask for a wide list.
  SearchQuery q;
  q.query = "zebra quagga okapi unusual words";
  q.mode = SearchMode::kVector;
  q.record_access = false;
  q.filter.limit = 50;
  auto r = svc.Search(q);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->hits.empty());
  EXPECT_EQ(r->hits[0].memory.id, added_id);
  q.query = "note 0 about module0 and function handler0";
  r = svc.Search(q);
  ASSERT_TRUE(r.ok());
  for (const auto& h : r->hits) EXPECT_NE(h.memory.id, 1) << "deleted memory came back";
}

TEST(HnswIndexTest, OtherProcessWritesReachTheIndex) {
  std::string path;
  auto db = ds::testing::NewMigratedDb(&path);
  ASSERT_TRUE(db);
  auto db2 = Database::Open(path, {});
  ASSERT_TRUE(db2.ok());
  HashEmbedder embedder;
  MemoryService reader(*db, embedder);
  ASSERT_TRUE(reader.LoadIndex().ok());
  MemoryService writer(**db2, embedder);
  ASSERT_TRUE(writer.LoadIndex().ok());
  MemoryInput in;
  in.content = "kubernetes readiness probe flapping during rollout";
  in.content_type = "error";
  auto stored = writer.Store(in);
  ASSERT_TRUE(stored.ok());
  SearchQuery q;
  q.query = "readiness probe flapping";
  q.mode = SearchMode::kVector;
  q.record_access = false;
  auto r = reader.Search(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->hits.size(), 1u);
  EXPECT_EQ(r->hits[0].memory.id, stored->memory.id);
  ASSERT_TRUE(writer.Forget(stored->memory.id).ok());
  r = reader.Search(q);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->hits.empty()) << "archived elsewhere: must leave this index too";
}

// The graph's block moves when it grows past its capacity and when it is
// loaded (onto huge pages): every vector and link must survive each move.
TEST(HnswGraphTest, VectorsAndSearchSurviveGrowthAndReload) {
  constexpr int kDim = 512;  // ~2.2 KB per node: the blocks are 2 MiB and more
  constexpr int kN = 1300;   // past the initial capacity (1024)
  HnswParams params;
  params.ef_construction = 32;
  params.ef_search = 32;
  HnswGraph graph(kDim, params, 1);
  std::mt19937 rng(11);
  std::vector<std::vector<float>> vecs;
  for (int i = 0; i < kN; ++i) {
    vecs.push_back(RandomUnit(rng, kDim));
    ASSERT_TRUE(graph.Add(i + 100, vecs.back().data()).ok());
  }
  EXPECT_GE(graph.capacity(), static_cast<size_t>(kN));
  std::string path = ds::testing::TempDir() + "/graph.hnsw";
  ASSERT_TRUE(graph.Save(path).ok());
  auto loaded = HnswGraph::Load(path, kDim, params);
  ASSERT_TRUE(loaded.ok());
  for (const HnswGraph* g : {&graph, loaded.value().get()}) {
    EXPECT_EQ(g->size(), static_cast<size_t>(kN));
    int self_first = 0;
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(g->Vector(i + 100), vecs[static_cast<size_t>(i)]) << i;
      auto hits = g->Search(vecs[static_cast<size_t>(i)].data(), 1);
      if (!hits.empty() && hits[0].first == i + 100) ++self_first;
    }
    EXPECT_GE(self_first, kN * 99 / 100);
  }
}

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

// After a model change the previous (hash) model answers until the new model
// covers the partition; then search switches at once, never mixing the two.
TEST(ModelSwitchTest, OldModelAnswersUntilReembedCovers) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  HashEmbedder old_model;  // hash-v1-384, the default
  {
    MemoryService svc(*db, old_model);
    ASSERT_TRUE(svc.LoadIndex().ok());
    for (const char* text :
         {"flaky integration test retried three times", "connection pool exhausted under load",
          "use structured logging with request ids"}) {
      MemoryInput in;
      in.content = text;
      in.content_type = "learning";
      ASSERT_TRUE(svc.Store(in).ok());
    }
  }
  HashEmbedder new_model(128);  // a different model id: hash-v1-128
  MemoryService svc(*db, new_model);
  ASSERT_TRUE(svc.LoadIndex().ok());
  EXPECT_EQ(svc.MissingVectors(), 3);
  SearchQuery q;
  q.query = "connection pool exhausted";
  q.mode = SearchMode::kVector;
  q.record_access = false;
  auto before = svc.Search(q);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->vector_model, old_model.model());
  ASSERT_FALSE(before->hits.empty());
  EXPECT_EQ(before->hits[0].memory.content, "connection pool exhausted under load");

  auto n = svc.Reembed();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(svc.MissingVectors(), 0);
  auto after = svc.Search(q);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->vector_model, new_model.model());
  ASSERT_FALSE(after->hits.empty());
  EXPECT_EQ(after->hits[0].memory.content, "connection pool exhausted under load");
}

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

TEST(SearchBoostTest, ImportanceBoostReordersOnlyWhenAskedFor) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  HashEmbedder embedder;
  MemoryService svc(*db, embedder);
  ASSERT_TRUE(svc.LoadIndex().ok());
  MemoryInput a;
  a.content = "cache invalidation strategy for product pages";
  a.content_type = "decision";
  a.relevance_score = 0.1;
  MemoryInput b = a;
  b.content = "cache invalidation strategy for product pages and carts";
  b.relevance_score = 1.0;
  auto ra = svc.Store(a);
  auto rb = svc.Store(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  SearchQuery q;
  q.query = "cache invalidation strategy for product pages";
  q.record_access = false;
  auto plain = svc.Search(q);
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->hits.size(), 2u);
  EXPECT_EQ(plain->hits[0].memory.id, ra->memory.id) << "the exact match ranks first unboosted";
  q.importance_boost = 1.0;
  auto boosted = svc.Search(q);
  ASSERT_TRUE(boosted.ok());
  ASSERT_EQ(boosted->hits.size(), 2u);
  EXPECT_EQ(boosted->hits[0].memory.id, rb->memory.id) << "importance lifts the relevant one";
}

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

TEST(Int8ScanTest, QuantisedScanWithRerankMatchesExactTopK) {
  constexpr int kDim = 96;
  VectorIndexOptions exact_opts;
  exact_opts.hnsw_threshold = 1 << 30;
  VectorIndexOptions int8_opts = exact_opts;
  int8_opts.int8_scan = true;
  VectorIndex exact(kDim, exact_opts);
  VectorIndex quant(kDim, int8_opts);
  std::mt19937 rng(3);
  for (int i = 1; i <= 3000; ++i) {
    auto v = RandomUnit(rng, kDim);
    VectorMeta meta;
    meta.content_type_bit = 1u << (i % 2);
    exact.Upsert("p", i, v.data(), meta);
    quant.Upsert("p", i, v.data(), meta);
  }
  for (int i = 1; i <= 3000; i += 7) {  // swap-removes keep the int8 rows aligned
    exact.Remove("p", i);
    quant.Remove("p", i);
  }
  double found = 0, total = 0;
  for (int q = 0; q < 40; ++q) {
    auto query = RandomUnit(rng, kDim);
    auto a = exact.Search("p", query.data(), 10, 1u << 1, false);
    auto b = quant.Search("p", query.data(), 10, 1u << 1, false);
    ASSERT_EQ(b.size(), 10u);
    for (const auto& h : b) {
      EXPECT_EQ(h.memory_id % 2, 1) << "type filter";
      EXPECT_NE(h.memory_id % 7, 1) << "removed row returned";
    }
    for (const auto& e : a) {
      total += 1;
      for (const auto& h : b) {
        if (h.memory_id == e.memory_id) {
          found += 1;
          EXPECT_FLOAT_EQ(h.similarity, e.similarity) << "re-ranked in float";
        }
      }
    }
  }
  EXPECT_GE(found / total, 0.98);
}

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

// Both ways a process may hold its indexes: the vector index alone, and with
// the in-memory keyword index (a server).
class ChangeLogTest : public ::testing::TestWithParam<MemoryService::Indexes> {};

TEST_P(ChangeLogTest, PrunedLogMakesALaggingIndexReload) {
  std::string path;
  auto db = ds::testing::NewMigratedDb(&path);
  ASSERT_TRUE(db);
  auto db2 = Database::Open(path, {});
  ASSERT_TRUE(db2.ok());
  HashEmbedder embedder;
  MemoryService lagging(*db, embedder);
  ASSERT_TRUE(lagging.LoadIndex(GetParam()).ok());
  MemoryService writer(**db2, embedder);
  ASSERT_TRUE(writer.LoadIndex().ok());
  int64_t deleted_id = 0;
  for (int i = 0; i < 20; ++i) {
    MemoryInput in;
    in.content = "observability note " + std::to_string(i) + " about zymurgy spans";
    in.content_type = "learning";
    auto r = writer.Store(in);
    ASSERT_TRUE(r.ok());
    if (i == 0) deleted_id = r->memory.id;
  }
  ASSERT_TRUE(writer.Delete(deleted_id).ok());
  auto pruned = writer.PruneChangeLog(3);
  ASSERT_TRUE(pruned.ok());
  EXPECT_GT(*pruned, 0);
  // The lagging index missed entries that no longer exist: it must reload.
  ASSERT_TRUE(lagging.SyncIndex().ok());
  auto stats = lagging.Stats(std::nullopt);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->indexed, 19);
  SearchQuery q;
  q.query = "zymurgy";
  q.mode = SearchMode::kKeyword;
  q.filter.limit = 100;
  auto found = lagging.Search(q);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->hits.size(), 19u);
  for (const auto& h : found->hits) EXPECT_NE(h.memory.id, deleted_id);
  if (GetParam() == MemoryService::Indexes::kVectorsAndKeywords) {
    ASSERT_NE(lagging.keyword_index(), nullptr);
    EXPECT_EQ(lagging.keyword_index()->Size(), 19u);
  }
}

INSTANTIATE_TEST_SUITE_P(Indexes, ChangeLogTest,
                         ::testing::Values(MemoryService::Indexes::kVectors,
                                           MemoryService::Indexes::kVectorsAndKeywords));

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

// The fallback is whichever recorded model holds the most vectors, not only
// the default: here hash-v1-64 (recorded in embedding_models at its first
// LoadIndex) answers for the default 384-d model until re-embedding covers it.
TEST(ModelSwitchTest, AnyRecordedPreviousModelAnswers) {
  auto db = ds::testing::NewMigratedDb();
  ASSERT_TRUE(db);
  HashEmbedder old_model(64);
  {
    MemoryService svc(*db, old_model);
    ASSERT_TRUE(svc.LoadIndex().ok());
    MemoryInput in;
    in.content = "terraform state lock stuck after an interrupted apply";
    in.content_type = "error";
    ASSERT_TRUE(svc.Store(in).ok());
  }
  HashEmbedder current;  // hash-v1-384
  MemoryService svc(*db, current);
  ASSERT_TRUE(svc.LoadIndex().ok());
  SearchQuery q;
  q.query = "terraform state lock";
  q.mode = SearchMode::kVector;
  q.record_access = false;
  auto r = svc.Search(q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->vector_model, old_model.model());
  ASSERT_EQ(r->hits.size(), 1u);
  ASSERT_TRUE(svc.Reembed().ok());
  r = svc.Search(q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->vector_model, current.model());
}

}  // namespace
}  // namespace ds::memory
