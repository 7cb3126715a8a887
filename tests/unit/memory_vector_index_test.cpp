// TopK selection and the in-memory VectorIndex (partitions, swap-remove,
// filters) checked against a brute-force scan.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "memory/simd.h"
#include "memory/vector_index.h"

namespace ds::memory {
namespace {

std::vector<int64_t> Ids(const std::vector<VectorHit>& hits) {
  std::vector<int64_t> out;
  for (const auto& h : hits) out.push_back(h.memory_id);
  return out;
}

// ---------------------------------------------------------------- TopK

TEST(MemoryTopKTest, KeepsTheKBestBestFirst) {
  TopK top(3);
  const std::vector<std::pair<int64_t, float>> in = {{1, 0.1f},  {2, 0.9f}, {3, 0.5f}, {4, 0.95f},
                                                     {5, -0.3f}, {6, 0.7f}, {7, 0.2f}};
  for (auto [id, s] : in) top.Push(id, s);
  EXPECT_TRUE(top.full());
  EXPECT_FLOAT_EQ(top.threshold(), 0.7f);
  auto out = top.Take();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(Ids(out), (std::vector<int64_t>{4, 2, 6}));
  EXPECT_FLOAT_EQ(out[0].similarity, 0.95f);
  EXPECT_FLOAT_EQ(out[1].similarity, 0.9f);
  EXPECT_FLOAT_EQ(out[2].similarity, 0.7f);
  // Take() empties it.
  EXPECT_TRUE(top.Take().empty());
  EXPECT_FALSE(top.full());
}

TEST(MemoryTopKTest, TiesPreferTheSmallerId) {
  {
    TopK top(2);
    for (int64_t id : {9, 3, 7, 1, 5}) top.Push(id, 0.5f);
    EXPECT_EQ(Ids(top.Take()), (std::vector<int64_t>{1, 3}));
  }
  {
    // Smaller ids first pushed: a later equal-score larger id must not evict.
    TopK top(2);
    for (int64_t id : {1, 2, 3, 4}) top.Push(id, 0.5f);
    EXPECT_EQ(Ids(top.Take()), (std::vector<int64_t>{1, 2}));
  }
  {
    // Ordering of ties in the output: best score first, then smaller id.
    TopK top(4);
    top.Push(10, 0.5f);
    top.Push(2, 0.5f);
    top.Push(7, 0.9f);
    top.Push(5, 0.5f);
    EXPECT_EQ(Ids(top.Take()), (std::vector<int64_t>{7, 2, 5, 10}));
  }
}

TEST(MemoryTopKTest, KLargerThanInput) {
  TopK top(10);
  top.Push(3, 0.3f);
  top.Push(1, 0.1f);
  top.Push(2, 0.2f);
  EXPECT_FALSE(top.full());
  auto out = top.Take();
  EXPECT_EQ(Ids(out), (std::vector<int64_t>{3, 2, 1}));
  TopK empty(5);
  EXPECT_TRUE(empty.Take().empty());
}

TEST(MemoryTopKTest, KZeroKeepsNothing) {
  TopK top(0);
  for (int64_t i = 0; i < 10; ++i) top.Push(i, static_cast<float>(i));
  EXPECT_TRUE(top.Take().empty());
}

TEST(MemoryTopKTest, MatchesSortOnRandomInput) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> score(0, 20);  // many ties
  for (size_t k : {1ul, 5ul, 50ul, 200ul}) {
    std::vector<VectorHit> all;
    TopK top(k);
    for (int64_t id = 1; id <= 150; ++id) {
      float s = static_cast<float>(score(rng)) / 20.0f;
      all.push_back({id, s});
      top.Push(id, s);
    }
    std::sort(all.begin(), all.end(), [](const VectorHit& a, const VectorHit& b) {
      return a.similarity != b.similarity ? a.similarity > b.similarity : a.memory_id < b.memory_id;
    });
    all.resize(std::min(k, all.size()));
    EXPECT_EQ(Ids(top.Take()), Ids(all)) << "k=" << k;
  }
}

// ---------------------------------------------------------------- VectorIndex

constexpr int kDim = 8;

std::vector<float> Unit(int axis, float tilt = 0.0f) {
  std::vector<float> v(kDim, 0.0f);
  v[static_cast<size_t>(axis)] = 1.0f;
  if (tilt != 0.0f) v[static_cast<size_t>((axis + 1) % kDim)] = tilt;
  float n = 0;
  for (float x : v) n += x * x;
  for (float& x : v) x /= std::sqrt(n);
  return v;
}

VectorMeta Meta(int type = 0, bool live = true) {
  VectorMeta m;
  m.content_type_bit = 1u << type;
  m.live = live;
  return m;
}

TEST(MemoryVectorIndexTest, UpsertSearchAndSizes) {
  VectorIndex idx(kDim);
  EXPECT_EQ(idx.dim(), kDim);
  EXPECT_EQ(idx.Size("p"), 0u);
  auto q = Unit(0);
  EXPECT_TRUE(idx.Search("p", q.data(), 5, 0, false).empty()) << "unknown partition";
  for (int i = 0; i < kDim; ++i) idx.Upsert("p", 100 + i, Unit(i).data(), Meta());
  EXPECT_EQ(idx.Size("p"), static_cast<size_t>(kDim));
  EXPECT_EQ(idx.TotalSize(), static_cast<size_t>(kDim));
  EXPECT_EQ(idx.VectorBytes(), static_cast<size_t>(kDim * kDim) * sizeof(float));
  auto hits = idx.Search("p", Unit(3).data(), 1, 0, false);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].memory_id, 103);
  EXPECT_NEAR(hits[0].similarity, 1.0, 1e-6);
  EXPECT_TRUE(idx.Search("p", q.data(), 0, 0, false).empty()) << "k = 0";
  EXPECT_EQ(idx.Search("p", q.data(), 100, 0, false).size(), static_cast<size_t>(kDim));
}

TEST(MemoryVectorIndexTest, UpsertReplacesVectorAndMeta) {
  VectorIndex idx(kDim);
  idx.Upsert("p", 1, Unit(0).data(), Meta(0));
  idx.Upsert("p", 2, Unit(1).data(), Meta(0));
  idx.Upsert("p", 1, Unit(5).data(), Meta(2));
  EXPECT_EQ(idx.Size("p"), 2u) << "replace must not add a row";
  auto hits = idx.Search("p", Unit(5).data(), 1, 0, false);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].memory_id, 1);
  EXPECT_NEAR(hits[0].similarity, 1.0, 1e-6);
  // The old vector is gone: the query on axis 0 finds nothing similar for id 1.
  auto old = idx.Search("p", Unit(0).data(), 2, 0, false);
  for (const auto& h : old) EXPECT_LT(h.similarity, 0.5f) << h.memory_id;
  // The meta was replaced too: type 2 now.
  EXPECT_EQ(Ids(idx.Search("p", Unit(5).data(), 5, 1u << 2, false)), (std::vector<int64_t>{1}));
  EXPECT_EQ(Ids(idx.Search("p", Unit(5).data(), 5, 1u << 0, false)), (std::vector<int64_t>{2}));
}

TEST(MemoryVectorIndexTest, SwapRemoveKeepsOtherRowsFindable) {
  VectorIndex idx(kDim);
  for (int i = 0; i < kDim; ++i) idx.Upsert("p", i + 1, Unit(i).data(), Meta());
  // Remove the first row (the last row is swapped into its slot), a middle one
  // and the (new) last one.
  idx.Remove("p", 1);
  idx.Remove("p", 4);
  idx.Remove("p", 7);
  EXPECT_EQ(idx.Size("p"), static_cast<size_t>(kDim - 3));
  EXPECT_EQ(idx.VectorBytes(), static_cast<size_t>((kDim - 3) * kDim) * sizeof(float));
  std::set<int64_t> removed = {1, 4, 7};
  for (int i = 0; i < kDim; ++i) {
    int64_t id = i + 1;
    auto hits = idx.Search("p", Unit(i).data(), 1, 0, false);
    ASSERT_EQ(hits.size(), 1u);
    if (removed.count(id)) {
      EXPECT_NE(hits[0].memory_id, id) << "removed id still found";
      EXPECT_LT(hits[0].similarity, 0.5f);
    } else {
      EXPECT_EQ(hits[0].memory_id, id) << "row lost after swap-remove";
      EXPECT_NEAR(hits[0].similarity, 1.0, 1e-6);
    }
  }
  // Removing unknown ids / partitions is a no-op.
  idx.Remove("p", 999);
  idx.Remove("nope", 2);
  EXPECT_EQ(idx.Size("p"), static_cast<size_t>(kDim - 3));
  // The moved row can still be replaced and removed by id.
  idx.Upsert("p", 8, Unit(0).data(), Meta());
  EXPECT_EQ(idx.Search("p", Unit(0).data(), 1, 0, false)[0].memory_id, 8);
  idx.Remove("p", 8);
  for (const auto& h : idx.Search("p", Unit(0).data(), 10, 0, false)) EXPECT_NE(h.memory_id, 8);
  // Remove everything, then add again.
  for (int64_t id : {2, 3, 5, 6}) idx.Remove("p", id);
  EXPECT_EQ(idx.Size("p"), 0u);
  EXPECT_TRUE(idx.Search("p", Unit(0).data(), 5, 0, false).empty());
  idx.Upsert("p", 42, Unit(2).data(), Meta());
  EXPECT_EQ(Ids(idx.Search("p", Unit(2).data(), 5, 0, false)), (std::vector<int64_t>{42}));
}

TEST(MemoryVectorIndexTest, PartitionsAreIsolated) {
  VectorIndex idx(kDim);
  idx.Upsert("alpha", 1, Unit(0).data(), Meta());
  idx.Upsert("beta", 2, Unit(0).data(), Meta());
  idx.Upsert("beta", 3, Unit(1).data(), Meta());
  EXPECT_EQ(idx.Size("alpha"), 1u);
  EXPECT_EQ(idx.Size("beta"), 2u);
  EXPECT_EQ(idx.TotalSize(), 3u);
  EXPECT_EQ(Ids(idx.Search("alpha", Unit(0).data(), 10, 0, false)), (std::vector<int64_t>{1}));
  EXPECT_EQ(Ids(idx.Search("beta", Unit(0).data(), 10, 0, false)), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(idx.Search("gamma", Unit(0).data(), 10, 0, false).empty());
  // Removing from one partition leaves the same id elsewhere alone.
  idx.Upsert("alpha", 2, Unit(4).data(), Meta());
  idx.Remove("alpha", 2);
  EXPECT_EQ(Ids(idx.Search("beta", Unit(0).data(), 1, 0, false)), (std::vector<int64_t>{2}));
  // SetMeta is per partition too.
  idx.SetMeta("alpha", 1, Meta(0, false));
  EXPECT_TRUE(idx.Search("alpha", Unit(0).data(), 10, 0, false).empty());
  EXPECT_EQ(idx.Search("beta", Unit(0).data(), 10, 0, false).size(), 2u);
}

TEST(MemoryVectorIndexTest, TypeMaskLiveFlagAndAccept) {
  VectorIndex idx(kDim);
  // ids 1..6: types 0,1,2,0,1,2; 4, 5 and 6 dead.
  for (int i = 0; i < 6; ++i) {
    idx.Upsert("p", i + 1, Unit(0, 0.1f * static_cast<float>(i)).data(), Meta(i % 3, i < 3));
  }
  auto q = Unit(0);
  auto all_live = Ids(idx.Search("p", q.data(), 10, 0, false));
  EXPECT_EQ(std::set<int64_t>(all_live.begin(), all_live.end()), (std::set<int64_t>{1, 2, 3}));
  auto with_dead = Ids(idx.Search("p", q.data(), 10, 0, true));
  EXPECT_EQ(with_dead.size(), 6u);
  // Best first: smaller tilt = more similar.
  EXPECT_EQ(with_dead, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));

  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, 1u << 0, false)), (std::vector<int64_t>{1}));
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, 1u << 0, true)), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, (1u << 1) | (1u << 2), false)),
            (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, (1u << 1) | (1u << 2), true)),
            (std::vector<int64_t>{2, 3, 5, 6}));
  EXPECT_TRUE(idx.Search("p", q.data(), 10, 1u << 5, true).empty());

  auto even = [](int64_t id) { return id % 2 == 0; };
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, 0, true, even)), (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, 0, false, even)), (std::vector<int64_t>{2}));
  // accept is applied before k is filled: k=1 still returns the best accepted.
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 1, 0, true, even)), (std::vector<int64_t>{2}));
  auto none = [](int64_t) { return false; };
  EXPECT_TRUE(idx.Search("p", q.data(), 10, 0, true, none).empty());

  // SetMeta flips liveness; unknown ids are ignored.
  idx.SetMeta("p", 4, Meta(0, true));
  idx.SetMeta("p", 77, Meta(0, true));
  idx.SetMeta("nope", 4, Meta(0, true));
  EXPECT_EQ(Ids(idx.Search("p", q.data(), 10, 1u << 0, false)), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(idx.Size("p"), 6u);
}

std::vector<float> RandomUnit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(dim));
  double n = 0;
  for (auto& x : v) {
    x = d(rng);
    n += static_cast<double>(x) * x;
  }
  for (auto& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

TEST(MemoryVectorIndexTest, ExactTopKEqualsBruteForceOnRandomData) {
  const int dim = 96;
  std::mt19937 rng(2024);
  VectorIndex idx(dim);
  std::vector<std::vector<float>> vecs;
  std::vector<VectorMeta> metas;
  // More rows than one scan block (256), with removals so rows get moved.
  const int n = 700;
  for (int i = 0; i < n; ++i) {
    vecs.push_back(RandomUnit(rng, dim));
    metas.push_back(Meta(i % 7, i % 5 != 0));
    idx.Upsert("p", i + 1, vecs.back().data(), metas.back());
  }
  std::set<int64_t> removed;
  for (int i = 0; i < n; i += 11) {
    idx.Remove("p", i + 1);
    removed.insert(i + 1);
  }
  // Replace some vectors.
  for (int i = 3; i < n; i += 13) {
    if (removed.count(i + 1)) continue;
    vecs[static_cast<size_t>(i)] = RandomUnit(rng, dim);
    idx.Upsert("p", i + 1, vecs[static_cast<size_t>(i)].data(), metas[static_cast<size_t>(i)]);
  }
  ASSERT_EQ(idx.Size("p"), static_cast<size_t>(n) - removed.size());

  for (int trial = 0; trial < 20; ++trial) {
    auto q = RandomUnit(rng, dim);
    size_t k = static_cast<size_t>(1 + trial * 7);
    uint32_t mask = trial % 3 == 0 ? 0u : (trial % 3 == 1 ? 0b0010101u : 0b1000000u);
    bool include_dead = trial % 2 == 0;
    std::vector<VectorHit> brute;
    for (int i = 0; i < n; ++i) {
      int64_t id = i + 1;
      const VectorMeta& m = metas[static_cast<size_t>(i)];
      if (removed.count(id)) continue;
      if (!include_dead && !m.live) continue;
      if (mask && !(mask & m.content_type_bit)) continue;
      brute.push_back({id, DotScalar(q.data(), vecs[static_cast<size_t>(i)].data(), dim)});
    }
    std::sort(brute.begin(), brute.end(), [](const VectorHit& a, const VectorHit& b) {
      return a.similarity != b.similarity ? a.similarity > b.similarity : a.memory_id < b.memory_id;
    });
    if (brute.size() > k) brute.resize(k);
    auto got = idx.Search("p", q.data(), k, mask, include_dead);
    ASSERT_EQ(got.size(), brute.size()) << "trial " << trial;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i].similarity, brute[i].similarity, 1e-5)
          << "trial " << trial << " rank " << i;
      // Ids agree unless two scores are within rounding of each other.
      if (got[i].memory_id != brute[i].memory_id) {
        bool near_tie =
            (i > 0 && std::fabs(brute[i].similarity - brute[i - 1].similarity) < 1e-5) ||
            (i + 1 < brute.size() &&
             std::fabs(brute[i].similarity - brute[i + 1].similarity) < 1e-5);
        EXPECT_TRUE(near_tie) << "trial " << trial << " rank " << i << ": " << got[i].memory_id
                              << " vs " << brute[i].memory_id;
      }
    }
    for (size_t i = 1; i < got.size(); ++i) {
      EXPECT_GE(got[i - 1].similarity, got[i].similarity) << "not sorted best first";
    }
  }
}

}  // namespace
}  // namespace ds::memory
