// HashEmbedder (determinism, normalisation, identifier splitting, similarity
// ordering) and the SIMD dot-product kernels against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "memory/embedder.h"
#include "memory/simd.h"

namespace ds::memory {
namespace {

double Norm(const Vector& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

double Cosine(const Vector& a, const Vector& b) {
  EXPECT_EQ(a.size(), b.size());
  double dot = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) dot += static_cast<double>(a[i]) * b[i];
  double na = Norm(a), nb = Norm(b);
  return na == 0 || nb == 0 ? 0 : dot / (na * nb);
}

TEST(MemoryHashEmbedderTest, DimAndModelName) {
  HashEmbedder e;
  EXPECT_EQ(e.dim(), 384);
  EXPECT_FALSE(e.model().empty());
  EXPECT_NE(e.model().find("384"), std::string::npos) << e.model();
  EXPECT_EQ(e.EmbedOne("hello world").size(), 384u);
  HashEmbedder small(64);
  EXPECT_EQ(small.dim(), 64);
  EXPECT_EQ(small.EmbedOne("hello world").size(), 64u);
  EXPECT_NE(small.model(), e.model()) << "different dims must be different models";
}

TEST(MemoryHashEmbedderTest, DeterministicAcrossInstancesAndCalls) {
  HashEmbedder a, b;
  const std::vector<std::string> texts = {
      "Fixed the race in the lease reaper by taking the writer lock first",
      "parseHttpRequest returns kMalformed for a truncated header",
      "naïve café — ünïcödé テキスト 日本語", "x", "SELECT * FROM semantic_memory WHERE id = ?;"};
  auto batch_a = a.Embed(texts);
  auto batch_b = b.Embed(texts);
  ASSERT_TRUE(batch_a.ok());
  ASSERT_TRUE(batch_b.ok());
  ASSERT_EQ(batch_a->size(), texts.size());
  ASSERT_EQ(batch_b->size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    Vector one = a.EmbedOne(texts[i]);
    Vector again = a.EmbedOne(texts[i]);
    ASSERT_EQ(one.size(), 384u);
    // Bit-identical, not just close.
    EXPECT_EQ(one, again) << texts[i];
    EXPECT_EQ(one, (*batch_a)[i]) << texts[i];
    EXPECT_EQ(one, (*batch_b)[i]) << texts[i];
    EXPECT_EQ(one, b.EmbedOne(texts[i])) << texts[i];
  }
  // Different texts give different vectors.
  EXPECT_NE(a.EmbedOne(texts[0]), a.EmbedOne(texts[1]));
}

TEST(MemoryHashEmbedderTest, UnitNormForTextWithWords) {
  HashEmbedder e;
  const std::vector<std::string> texts = {
      "a single meaningful word: database",
      "x",
      "42",
      "snake_case_identifier",
      "CamelCaseIdentifierWithHTTPServer",
      "日本語のテキスト",
      std::string(20000, 'a') + " " + std::string(100, 'b'),
      "repeat repeat repeat repeat repeat repeat repeat repeat"};
  for (const auto& t : texts) {
    Vector v = e.EmbedOne(t);
    ASSERT_EQ(v.size(), 384u);
    EXPECT_NEAR(Norm(v), 1.0, 1e-5) << t.substr(0, 60);
    for (float x : v) ASSERT_TRUE(std::isfinite(x)) << t.substr(0, 60);
  }
}

TEST(MemoryHashEmbedderTest, ZeroVectorForTextWithoutWords) {
  HashEmbedder e;
  for (std::string t :
       {std::string(""), std::string("   \n\t  "), std::string("!!! ??? ... ---"),
        std::string("(){}[]<>;:,./\\|"), std::string("___"), std::string("\0\0\0", 3)}) {
    Vector v = e.EmbedOne(t);
    ASSERT_EQ(v.size(), 384u);
    for (float x : v) ASSERT_EQ(x, 0.0f) << "text: \"" << t << "\"";
  }
  auto batch = e.Embed({"", "word"});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(Norm((*batch)[0]), 0.0);
  EXPECT_NEAR(Norm((*batch)[1]), 1.0, 1e-5);
}

TEST(MemoryHashEmbedderTest, IdentifierSplittingMatchesSpacedWords) {
  HashEmbedder e;
  Vector ident = e.EmbedOne("parseHttpRequest");
  Vector spaced = e.EmbedOne("parse http request");
  Vector unrelated = e.EmbedOne("quarterly revenue spreadsheet totals");
  double close = Cosine(ident, spaced);
  double far = Cosine(ident, unrelated);
  EXPECT_GT(close, far + 0.3) << "close=" << close << " far=" << far;
  EXPECT_GT(close, 0.5);

  // snake_case and kebab-case split the same way.
  Vector snake = e.EmbedOne("parse_http_request");
  EXPECT_GT(Cosine(snake, spaced), 0.5);
  EXPECT_GT(Cosine(snake, spaced), Cosine(snake, unrelated) + 0.3);
  // Acronyms: HTTPServer -> http server.
  Vector acronym = e.EmbedOne("HTTPServer");
  EXPECT_GT(Cosine(acronym, e.EmbedOne("http server")), Cosine(acronym, unrelated) + 0.3);
  // Case does not matter for plain words.
  EXPECT_GT(Cosine(e.EmbedOne("Database Migration"), e.EmbedOne("database migration")), 0.99);
}

TEST(MemoryHashEmbedderTest, RelatedTextsAreCloserThanUnrelated) {
  HashEmbedder e;
  struct Triple {
    std::string anchor, related, unrelated;
  };
  const std::vector<Triple> cases = {
      {"the sqlite database connection is locked by another writer",
       "database locked: another sqlite connection holds the write lock",
       "the user interface uses a blue colour palette for buttons"},
      {"authentication token expired, refresh the token before retrying",
       "refresh an expired authentication token",
       "kubernetes pod scheduling across availability zones"},
      {"vector index exact scan with SIMD dot products",
       "SIMD dot product kernels for the exact vector scan",
       "write release notes for the documentation website"},
      {"authentication", "authenticate the user", "spreadsheet"},
  };
  for (const auto& c : cases) {
    Vector a = e.EmbedOne(c.anchor);
    double rel = Cosine(a, e.EmbedOne(c.related));
    double unrel = Cosine(a, e.EmbedOne(c.unrelated));
    EXPECT_GT(rel, unrel) << c.anchor << " | rel=" << rel << " unrel=" << unrel;
    EXPECT_GT(rel, 0.2) << c.anchor;
  }
  // Self-similarity is 1.
  Vector v = e.EmbedOne(cases[0].anchor);
  EXPECT_NEAR(Cosine(v, v), 1.0, 1e-6);
}

TEST(MemoryHashEmbedderTest, NoiseFloorSeparatesRelatedFromUnrelated) {
  HashEmbedder e;
  double floor = e.NoiseFloor();
  EXPECT_GT(floor, 0.0);
  EXPECT_LT(floor, 0.3);
  EXPECT_GT(HashEmbedder(64).NoiseFloor(), floor) << "fewer dims, more collision noise";
  // Inflections share a feature.
  EXPECT_GT(Cosine(e.EmbedOne("retries"), e.EmbedOne("retry")), floor);
  EXPECT_GT(Cosine(e.EmbedOne("parsing handlers"), e.EmbedOne("parse handler")), floor);
  // Pairs of unrelated texts mostly fall below the floor.
  const std::vector<std::string> texts = {
      "quarterly revenue spreadsheet totals", "kubernetes pod scheduling",
      "blue colour palette for buttons",      "parseHttpRequest",
      "release notes for the website",        "lease reaper expiry",
      "photosynthesis in green plants",       "bicycle gear ratios",
      "migrate the postgres schema",          "jazz saxophone improvisation",
      "tax deduction for home office",        "compile shaders on the GPU"};
  int above = 0, pairs = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    for (size_t j = i + 1; j < texts.size(); ++j) {
      ++pairs;
      above += Cosine(e.EmbedOne(texts[i]), e.EmbedOne(texts[j])) >= floor;
    }
  }
  // (With a floor of 0 about two thirds of these pairs would pass.)
  EXPECT_LE(above, pairs / 8) << above << " of " << pairs << " unrelated pairs above the floor";
}

// ---------------------------------------------------------------- SIMD

std::vector<float> RandomVec(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// |a·b| bound used as the scale for mixed-sign data (the dot itself can be ~0).
double AbsDot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(a[i]) * b[i]);
  return s;
}

const std::vector<size_t> kLengths = {0, 1, 7, 15, 16, 17, 31, 32, 33, 383, 384, 385, 768, 1000};

TEST(MemorySimdTest, DotMatchesScalarForManyLengths) {
  std::mt19937 rng(12345);
  for (size_t n : kLengths) {
    for (int trial = 0; trial < 5; ++trial) {
      // Positive data: the relative error is well defined.
      auto a = RandomVec(rng, n, 0.0f, 1.0f);
      auto b = RandomVec(rng, n, 0.0f, 1.0f);
      float ref = DotScalar(a.data(), b.data(), n);
      float got = Dot(a.data(), b.data(), n);
      if (n == 0) {
        EXPECT_EQ(got, 0.0f);
        EXPECT_EQ(ref, 0.0f);
        continue;
      }
      EXPECT_LT(std::fabs(got - ref) / std::fabs(ref), 1e-4) << "n=" << n;
      // Mixed signs: error relative to sum |a_i b_i|.
      auto c = RandomVec(rng, n, -1.0f, 1.0f);
      auto d = RandomVec(rng, n, -1.0f, 1.0f);
      float ref2 = DotScalar(c.data(), d.data(), n);
      float got2 = Dot(c.data(), d.data(), n);
      EXPECT_LT(std::fabs(got2 - ref2) / AbsDot(c.data(), d.data(), n), 1e-4) << "n=" << n;
    }
  }
}

TEST(MemorySimdTest, DotScalarIsExactOnSmallIntegers) {
  std::vector<float> a = {1, 2, 3, 4, 5}, b = {5, 4, 3, 2, 1};
  EXPECT_EQ(DotScalar(a.data(), b.data(), 5), 35.0f);
  EXPECT_EQ(Dot(a.data(), b.data(), 5), 35.0f);
  std::vector<float> ones(1000, 1.0f);
  EXPECT_EQ(Dot(ones.data(), ones.data(), 1000), 1000.0f);
  EXPECT_EQ(Dot(ones.data(), ones.data(), 0), 0.0f);
}

TEST(MemorySimdTest, DotUnalignedPointers) {
  std::mt19937 rng(7);
  auto a = RandomVec(rng, 1003, 0.0f, 1.0f);
  auto b = RandomVec(rng, 1003, 0.0f, 1.0f);
  for (size_t off = 0; off < 3; ++off) {
    for (size_t n : {17ul, 384ul, 1000ul}) {
      float ref = DotScalar(a.data() + off, b.data() + off, n);
      float got = Dot(a.data() + off, b.data() + off, n);
      EXPECT_LT(std::fabs(got - ref) / std::fabs(ref), 1e-4) << "off=" << off << " n=" << n;
    }
  }
}

TEST(MemorySimdTest, DotBatchMatchesScalarForManyLengths) {
  std::mt19937 rng(999);
  for (size_t dim : kLengths) {
    for (size_t count : {0ul, 1ul, 3ul, 17ul, 300ul}) {
      auto q = RandomVec(rng, dim, 0.0f, 1.0f);
      auto rows = RandomVec(rng, dim * count, 0.0f, 1.0f);
      // Sentinel beyond `count` must not be written.
      std::vector<float> out(count + 1, -7.0f);
      DotBatch(q.data(), rows.data(), dim, count, out.data());
      EXPECT_EQ(out[count], -7.0f) << "wrote past count, dim=" << dim << " count=" << count;
      for (size_t r = 0; r < count; ++r) {
        float ref = DotScalar(q.data(), rows.data() + r * dim, dim);
        if (dim == 0) {
          EXPECT_EQ(out[r], 0.0f);
          continue;
        }
        ASSERT_LT(std::fabs(out[r] - ref) / std::fabs(ref), 1e-4)
            << "dim=" << dim << " count=" << count << " row=" << r;
      }
      // Mixed signs.
      auto q2 = RandomVec(rng, dim, -1.0f, 1.0f);
      auto rows2 = RandomVec(rng, dim * count, -1.0f, 1.0f);
      DotBatch(q2.data(), rows2.data(), dim, count, out.data());
      for (size_t r = 0; r < count && dim > 0; ++r) {
        const float* row = rows2.data() + r * dim;
        float ref = DotScalar(q2.data(), row, dim);
        ASSERT_LT(std::fabs(out[r] - ref) / AbsDot(q2.data(), row, dim), 1e-4)
            << "dim=" << dim << " count=" << count << " row=" << r;
      }
    }
  }
}

TEST(MemorySimdTest, DotBatchAgreesWithDot) {
  std::mt19937 rng(4242);
  const size_t dim = 384, count = 50;
  auto q = RandomVec(rng, dim, -1.0f, 1.0f);
  auto rows = RandomVec(rng, dim * count, -1.0f, 1.0f);
  std::vector<float> out(count);
  DotBatch(q.data(), rows.data(), dim, count, out.data());
  for (size_t r = 0; r < count; ++r) {
    float single = Dot(q.data(), rows.data() + r * dim, dim);
    EXPECT_NEAR(out[r], single, 1e-4 * AbsDot(q.data(), rows.data() + r * dim, dim));
  }
}

TEST(MemorySimdTest, DotBatchOverABlockOfALargerArrayGivesTheSameScores) {
  // A scan in blocks passes how many rows may be read (prefetched) past the
  // block: the scores must be the block's own, whatever that number.
  std::mt19937 rng(77);
  const size_t dim = 768, total = 40, count = 16;
  auto q = RandomVec(rng, dim, -1.0f, 1.0f);
  auto rows = RandomVec(rng, dim * total, -1.0f, 1.0f);
  std::vector<float> alone(count + 1, -7.0f), in_array(count + 1, -7.0f);
  DotBatch(q.data(), rows.data() + 8 * dim, dim, count, alone.data());
  DotBatch(q.data(), rows.data() + 8 * dim, dim, count, in_array.data(), total - 8);
  EXPECT_EQ(alone, in_array);
  EXPECT_EQ(in_array[count], -7.0f) << "wrote past count";
}

}  // namespace
}  // namespace ds::memory
