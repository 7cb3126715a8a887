// Reciprocal Rank Fusion and budgeted context assembly (pure functions).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/clock.h"
#include "memory/codec.h"
#include "memory/memory_service.h"

namespace ds::memory {
namespace {

const FusedHit* Find(const std::vector<FusedHit>& v, int64_t id) {
  for (const auto& h : v) {
    if (h.id == id) return &h;
  }
  return nullptr;
}

std::vector<int64_t> FusedIds(const std::vector<FusedHit>& v) {
  std::vector<int64_t> out;
  for (const auto& h : v) out.push_back(h.id);
  return out;
}

// ---------------------------------------------------------------- FuseRrf

TEST(MemoryFuseRrfTest, FormulaAndRanks) {
  auto out = FuseRrf({10, 20, 30}, {30, 10, 40}, 1.0, 1.0);
  ASSERT_EQ(out.size(), 4u);
  const FusedHit* h10 = Find(out, 10);
  const FusedHit* h20 = Find(out, 20);
  const FusedHit* h30 = Find(out, 30);
  const FusedHit* h40 = Find(out, 40);
  ASSERT_TRUE(h10 && h20 && h30 && h40);
  EXPECT_DOUBLE_EQ(h10->score, 1.0 / 61 + 1.0 / 62);
  EXPECT_DOUBLE_EQ(h20->score, 1.0 / 62);
  EXPECT_DOUBLE_EQ(h30->score, 1.0 / 63 + 1.0 / 61);
  EXPECT_DOUBLE_EQ(h40->score, 1.0 / 63);
  EXPECT_EQ(h10->keyword_rank, 1);
  EXPECT_EQ(h10->vector_rank, 2);
  EXPECT_EQ(h20->keyword_rank, 2);
  EXPECT_FALSE(h20->vector_rank.has_value());
  EXPECT_EQ(h30->keyword_rank, 3);
  EXPECT_EQ(h30->vector_rank, 1);
  EXPECT_FALSE(h40->keyword_rank.has_value());
  EXPECT_EQ(h40->vector_rank, 3);
  // Best first.
  EXPECT_EQ(FusedIds(out), (std::vector<int64_t>{10, 30, 20, 40}));
}

TEST(MemoryFuseRrfTest, CustomK) {
  auto out = FuseRrf({1, 2}, {2}, 1.0, 1.0, 1);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_DOUBLE_EQ(Find(out, 1)->score, 1.0 / 2);
  EXPECT_DOUBLE_EQ(Find(out, 2)->score, 1.0 / 3 + 1.0 / 2);
  EXPECT_EQ(out[0].id, 2);
}

TEST(MemoryFuseRrfTest, WeightsScaleEachSide) {
  auto out = FuseRrf({1, 2}, {2, 1}, 2.0, 0.5);
  EXPECT_DOUBLE_EQ(Find(out, 1)->score, 2.0 / 61 + 0.5 / 62);
  EXPECT_DOUBLE_EQ(Find(out, 2)->score, 2.0 / 62 + 0.5 / 61);
  EXPECT_EQ(out[0].id, 1) << "keyword side dominates";
  auto flipped = FuseRrf({1, 2}, {2, 1}, 0.5, 2.0);
  EXPECT_EQ(flipped[0].id, 2) << "vector side dominates";
  // A zero weight removes that side's contribution but keeps its ranks.
  auto kw_only = FuseRrf({1, 2}, {2, 1}, 1.0, 0.0);
  EXPECT_DOUBLE_EQ(Find(kw_only, 1)->score, 1.0 / 61);
  EXPECT_EQ(Find(kw_only, 1)->vector_rank, 2);
}

TEST(MemoryFuseRrfTest, ItemsOnOneSideOnly) {
  auto kw = FuseRrf({5, 6, 7}, {}, 1.0, 1.0);
  ASSERT_EQ(FusedIds(kw), (std::vector<int64_t>{5, 6, 7}));
  for (const auto& h : kw) {
    EXPECT_TRUE(h.keyword_rank.has_value());
    EXPECT_FALSE(h.vector_rank.has_value());
    EXPECT_DOUBLE_EQ(h.score, 1.0 / (60 + *h.keyword_rank));
  }
  auto vec = FuseRrf({}, {9, 3}, 1.0, 1.0);
  ASSERT_EQ(FusedIds(vec), (std::vector<int64_t>{9, 3}));
  EXPECT_FALSE(vec[0].keyword_rank.has_value());
  EXPECT_EQ(vec[0].vector_rank, 1);
  EXPECT_EQ(vec[1].vector_rank, 2);
  EXPECT_TRUE(FuseRrf({}, {}, 1.0, 1.0).empty());
  // Disjoint lists: an item at rank r on either side scores the same, ties
  // broken deterministically (newer = larger id first).
  auto disjoint = FuseRrf({1}, {2}, 1.0, 1.0);
  ASSERT_EQ(disjoint.size(), 2u);
  EXPECT_DOUBLE_EQ(disjoint[0].score, disjoint[1].score);
  EXPECT_EQ(FusedIds(disjoint), (std::vector<int64_t>{2, 1}));
}

TEST(MemoryFuseRrfTest, DuplicateIdsCountOnce) {
  auto out = FuseRrf({5, 5, 7, 5}, {8, 8, 5}, 1.0, 1.0);
  ASSERT_EQ(out.size(), 3u) << "one entry per id";
  const FusedHit* h5 = Find(out, 5);
  const FusedHit* h7 = Find(out, 7);
  const FusedHit* h8 = Find(out, 8);
  ASSERT_TRUE(h5 && h7 && h8);
  EXPECT_EQ(h5->keyword_rank, 1) << "first occurrence wins";
  EXPECT_EQ(h8->vector_rank, 1);
  EXPECT_FALSE(h8->keyword_rank.has_value());
  // Each side contributes once, at the recorded rank.
  EXPECT_DOUBLE_EQ(h5->score, 1.0 / (60 + *h5->keyword_rank) + 1.0 / (60 + *h5->vector_rank));
  EXPECT_DOUBLE_EQ(h7->score, 1.0 / (60 + *h7->keyword_rank));
  EXPECT_DOUBLE_EQ(h8->score, 1.0 / 61);
  EXPECT_LT(*h7->keyword_rank, 4);
  for (size_t i = 1; i < out.size(); ++i) EXPECT_GE(out[i - 1].score, out[i].score);
}

// ---------------------------------------------------------------- AssembleContext

SearchHit Hit(int64_t id, const std::string& type, const std::string& content,
              const std::string& format = "text", std::optional<std::string> file = std::nullopt) {
  SearchHit h;
  h.memory.id = id;
  h.memory.content_type = type;
  h.memory.content = content;
  h.memory.content_format = format;
  h.memory.file_path = std::move(file);
  h.memory.created_at = NowTimestamp();
  return h;
}

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

void CheckBudget(const ContextResult& r, int budget, const std::string& what) {
  EXPECT_LE(EstimateTokens(r.context), budget) << what;
  EXPECT_LE(r.tokens, budget) << what;
  EXPECT_GE(r.tokens, EstimateTokens(r.context)) << what << ": tokens under-reported";
  // Every included id has its header, and no other header appears.
  size_t headers = 0;
  for (size_t pos = r.context.find("## Memory "); pos != std::string::npos;
       pos = r.context.find("## Memory ", pos + 1)) {
    ++headers;
  }
  EXPECT_EQ(headers, r.memory_ids.size()) << what;
  for (int64_t id : r.memory_ids) {
    EXPECT_NE(r.context.find("## Memory " + std::to_string(id) + " "), std::string::npos)
        << what << " id " << id;
  }
}

TEST(MemoryContextAssemblyTest, EmptyAndZeroBudget) {
  auto empty = AssembleContext({}, 1000, false);
  EXPECT_TRUE(empty.context.empty());
  EXPECT_EQ(empty.tokens, 0);
  EXPECT_FALSE(empty.truncated);
  EXPECT_TRUE(empty.memory_ids.empty());
  auto zero = AssembleContext({Hit(1, "learning", "something")}, 0, false);
  EXPECT_TRUE(zero.context.empty());
  EXPECT_TRUE(zero.memory_ids.empty());
  EXPECT_TRUE(zero.truncated);
}

TEST(MemoryContextAssemblyTest, HeadersAndEverythingFitsInOrder) {
  std::vector<SearchHit> hits = {
      Hit(42, "decision", "Use WAL mode for concurrent readers."),
      Hit(7, "code", "int main() { return 0; }", "cpp", "src/main.cpp"),
      Hit(9, "learning", "FTS5 needs quoted terms.", "markdown"),
  };
  auto r = AssembleContext(hits, 2000, false);
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(r.memory_ids, (std::vector<int64_t>{42, 7, 9}));
  CheckBudget(r, 2000, "fits");
  EXPECT_NE(r.context.find("## Memory 42 · decision"), std::string::npos) << r.context;
  EXPECT_NE(r.context.find("## Memory 7 · code · src/main.cpp"), std::string::npos) << r.context;
  EXPECT_NE(r.context.find("Use WAL mode for concurrent readers."), std::string::npos);
  // Order of appearance follows the hits.
  EXPECT_LT(r.context.find("Memory 42"), r.context.find("Memory 7"));
  EXPECT_LT(r.context.find("Memory 7"), r.context.find("Memory 9"));
  // Code formats are fenced with their language; text/markdown are not.
  EXPECT_NE(r.context.find("```cpp\nint main() { return 0; }\n```"), std::string::npos)
      << r.context;
  size_t fences = 0;
  for (size_t p = r.context.find("```"); p != std::string::npos; p = r.context.find("```", p + 3)) {
    ++fences;
  }
  EXPECT_EQ(fences, 2u) << "only the cpp memory is fenced:\n" << r.context;
}

TEST(MemoryContextAssemblyTest, NeverExceedsBudgetOnRandomInputs) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> len(1, 3000);
  std::uniform_int_distribution<int> type(0, 6);
  std::uniform_int_distribution<int> fmt(0, 3);
  const char* formats[] = {"text", "python", "markdown", "diff"};
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<SearchHit> hits;
    int n = 1 + trial % 12;
    for (int i = 0; i < n; ++i) {
      std::string content;
      int l = len(rng);
      // Mix ASCII and multi-byte text so truncation meets UTF-8 boundaries.
      while (static_cast<int>(content.size()) < l) content += (i % 2) ? "é日x" : "word ";
      hits.push_back(
          Hit(100 + i, std::string(ContentTypes()[static_cast<size_t>(type(rng))]), content,
              formats[fmt(rng)],
              i % 3 ? std::nullopt : std::optional<std::string>("dir/file_" + std::to_string(i))));
    }
    for (int budget : {1, 10, 31, 32, 33, 64, 100, 250, 777, 1500, 5000}) {
      for (bool diversity : {false, true}) {
        auto r = AssembleContext(hits, budget, diversity);
        std::string what = "trial " + std::to_string(trial) + " budget " + std::to_string(budget) +
                           (diversity ? " diverse" : "");
        CheckBudget(r, budget, what);
        EXPECT_TRUE(ValidUtf8(r.context)) << what;
        if (r.memory_ids.size() < hits.size()) {
          EXPECT_TRUE(r.truncated) << what;
        }
      }
    }
  }
}

TEST(MemoryContextAssemblyTest, TruncatesTheLastItemWithMarkerWhenRoomRemains) {
  std::vector<SearchHit> hits = {Hit(1, "decision", "short decision"),
                                 Hit(2, "learning", std::string(4000, 'L')),
                                 Hit(3, "learning", "never reached")};
  auto full1 = AssembleContext({hits[0]}, 10000, false);
  int first = full1.tokens;
  // Room for the first block plus 100 tokens: the second is cut.
  int budget = first + 100;
  auto r = AssembleContext(hits, budget, false);
  CheckBudget(r, budget, "truncate");
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.memory_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_NE(r.context.find("[truncated]"), std::string::npos) << r.context;
  EXPECT_EQ(r.context.find("never reached"), std::string::npos);
  EXPECT_NE(r.context.find("LLLL"), std::string::npos) << "some of the cut memory is kept";
  EXPECT_GT(r.tokens, first + 50) << "the remaining room is used";
  // Code stays fenced when cut.
  auto code = AssembleContext({Hit(5, "code", std::string(4000, 'c'), "python")}, 200, false);
  CheckBudget(code, 200, "code truncate");
  EXPECT_EQ(code.memory_ids, (std::vector<int64_t>{5}));
  EXPECT_NE(code.context.find("```python\n"), std::string::npos);
  EXPECT_NE(code.context.find("[truncated]\n```"), std::string::npos) << code.context;
}

TEST(MemoryContextAssemblyTest, NoTruncatedItemWhenLessThan32TokensRemain) {
  std::vector<SearchHit> hits = {Hit(1, "decision", "short decision"),
                                 Hit(2, "learning", std::string(4000, 'L'))};
  int first = AssembleContext({hits[0]}, 10000, false).tokens;
  for (int extra : {0, 1, 20, 31}) {
    auto r = AssembleContext(hits, first + extra, false);
    CheckBudget(r, first + extra, "extra " + std::to_string(extra));
    EXPECT_EQ(r.memory_ids, (std::vector<int64_t>{1})) << "extra " << extra;
    EXPECT_TRUE(r.truncated);
    EXPECT_EQ(r.context.find("[truncated]"), std::string::npos);
  }
  auto r = AssembleContext(hits, first + 32, false);
  CheckBudget(r, first + 32, "extra 32");
  EXPECT_EQ(r.memory_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_NE(r.context.find("[truncated]"), std::string::npos);
}

TEST(MemoryContextAssemblyTest, TruncationKeepsUtf8Whole) {
  std::string content;
  for (int i = 0; i < 3000; ++i) content += "日";
  for (int budget = 40; budget < 80; ++budget) {
    auto r = AssembleContext({Hit(1, "context", content)}, budget, false);
    CheckBudget(r, budget, "utf8 " + std::to_string(budget));
    EXPECT_TRUE(ValidUtf8(r.context)) << budget;
    EXPECT_NE(r.context.find("日"), std::string::npos) << budget;
  }
}

// A code memory that itself contains a ``` line (a docstring, a README
// snippet) must not close its fence early: the fence has to be longer than
// any backtick run in the content (CommonMark).
TEST(MemoryContextAssemblyTest, FenceIsNotClosedByBackticksInTheContent) {
  const std::string content =
      "def f():\n    \"\"\"Example:\n    ```\n    f()\n    ```\n    \"\"\"\n";
  auto r = AssembleContext({Hit(1, "code", content, "python")}, 10000, false);
  ASSERT_EQ(r.memory_ids, (std::vector<int64_t>{1}));
  ASSERT_NE(r.context.find(content), std::string::npos) << "content altered";
  size_t open = r.context.find('`');
  ASSERT_NE(open, std::string::npos);
  size_t run = 0;
  while (open + run < r.context.size() && r.context[open + run] == '`') ++run;
  EXPECT_GT(run, 3u) << "fence no longer than the backtick run inside:\n" << r.context;
  EXPECT_EQ(r.context.substr(open, run) + "python\n" + content,
            r.context.substr(open, run + 7 + content.size()));
  // The closing fence matches the opening one.
  EXPECT_NE(r.context.find("\n" + r.context.substr(open, run) + "\n", open + run),
            std::string::npos)
      << r.context;
}

TEST(MemoryContextAssemblyTest, DiversityInterleavesContentTypes) {
  std::vector<SearchHit> hits = {
      Hit(1, "code", "c1"),     Hit(2, "code", "c2"),  Hit(3, "code", "c3"),
      Hit(4, "decision", "d1"), Hit(5, "error", "e1"), Hit(6, "decision", "d2"),
  };
  auto plain = AssembleContext(hits, 10000, false);
  EXPECT_EQ(plain.memory_ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  auto diverse = AssembleContext(hits, 10000, true);
  // Round-robin over types in order of first appearance, rank order within a type.
  EXPECT_EQ(diverse.memory_ids, (std::vector<int64_t>{1, 4, 5, 2, 6, 3}));
  CheckBudget(diverse, 10000, "diverse");
  // With a small budget diversity gets three types in instead of one.
  int three = 0;
  for (size_t i : {0u, 3u, 4u}) three += AssembleContext({hits[i]}, 10000, false).tokens;
  auto small = AssembleContext(hits, three, true);
  CheckBudget(small, three, "diverse small");
  EXPECT_EQ(small.memory_ids, (std::vector<int64_t>{1, 4, 5}));
}

}  // namespace
}  // namespace ds::memory
