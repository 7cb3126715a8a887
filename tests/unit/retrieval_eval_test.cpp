// The retrieval evaluation set (eval/retrieval/) and its quality gate: the set
// has the promised size and shape, and hybrid search is at least as good as the
// better of its two sides at recall@5.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "../../bench/retrieval_eval_lib.h"

namespace ds::retrieval_eval {
namespace {

std::filesystem::path EvalDir() {
  // The repository root is three levels above this file (tests/unit/x.cpp);
  // fall back to walking up from the working directory.
  auto from_source = FindEvalDir(std::filesystem::path(__FILE__).parent_path());
  if (from_source) return *from_source;
  auto from_cwd = FindEvalDir(std::filesystem::current_path());
  return from_cwd.value_or(std::filesystem::path());
}

class RetrievalEvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = EvalDir();
    ASSERT_FALSE(dir.empty()) << "eval/retrieval not found above " << __FILE__;
    auto m = LoadMemories(dir / "memories.jsonl");
    ASSERT_TRUE(m.ok()) << m.status().message();
    auto q = LoadQueries(dir / "queries.jsonl");
    ASSERT_TRUE(q.ok()) << q.status().message();
    mems_ = new std::vector<EvalMemory>(std::move(m).value());
    queries_ = new std::vector<EvalQuery>(std::move(q).value());
  }
  static void TearDownTestSuite() {
    delete mems_;
    delete queries_;
    mems_ = nullptr;
    queries_ = nullptr;
  }
  void SetUp() override {
    if (!mems_ || !queries_) GTEST_SKIP() << "evaluation set failed to load";
  }

  static std::vector<EvalMemory>* mems_;
  static std::vector<EvalQuery>* queries_;
};

std::vector<EvalMemory>* RetrievalEvalTest::mems_ = nullptr;
std::vector<EvalQuery>* RetrievalEvalTest::queries_ = nullptr;

TEST_F(RetrievalEvalTest, SetHasPromisedSizeAndShape) {
  EXPECT_GE(mems_->size(), 300u);
  EXPECT_GE(queries_->size(), 60u);

  std::map<std::string, const EvalMemory*> by_key;
  for (const auto& m : *mems_) by_key[m.key] = &m;
  std::set<std::string> ids;
  std::set<std::string> kinds(QueryKinds().begin(), QueryKinds().end());
  for (const auto& q : *queries_) {
    EXPECT_TRUE(ids.insert(q.id).second) << "duplicate query id " << q.id;
    EXPECT_TRUE(kinds.count(q.kind)) << q.id << ": unknown kind " << q.kind;
    EXPECT_GE(q.relevant.size(), 1u) << q.id;
    EXPECT_LE(q.relevant.size(), 4u) << q.id;
    for (const auto& r : q.relevant) EXPECT_TRUE(by_key.count(r)) << q.id << ": unknown " << r;
  }
}

TEST_F(RetrievalEvalTest, ParaphraseQueriesShareNoWordWithTheirTargets) {
  std::map<std::string, const EvalMemory*> by_key;
  for (const auto& m : *mems_) by_key[m.key] = &m;
  int paraphrases = 0;
  for (const auto& q : *queries_) {
    if (q.kind != "paraphrase") continue;
    ++paraphrases;
    auto shared = SharedWords(q, by_key);
    std::string list;
    for (const auto& w : shared) list += " " + w;
    EXPECT_TRUE(shared.empty()) << q.id << " shares:" << list;
  }
  EXPECT_GE(CountDisjointParaphrases(*mems_, *queries_), 20);
  EXPECT_EQ(CountDisjointParaphrases(*mems_, *queries_), paraphrases);
}

TEST(RetrievalEvalMetricsTest, RecallAndReciprocalRank) {
  std::vector<std::string> ranked{"m3", "m1", "m9", "m4", "m5", "m6", "m2"};
  EXPECT_DOUBLE_EQ(RecallAt(ranked, {"m1", "m2"}, 5), 0.5);
  EXPECT_DOUBLE_EQ(RecallAt(ranked, {"m1", "m2"}, 10), 1.0);
  EXPECT_DOUBLE_EQ(RecallAt(ranked, {"m7"}, 10), 0.0);
  EXPECT_DOUBLE_EQ(ReciprocalRankAt(ranked, {"m9", "m2"}, 10), 1.0 / 3);
  EXPECT_DOUBLE_EQ(ReciprocalRankAt(ranked, {"m2"}, 5), 0.0);
  EXPECT_EQ(WordSet("Why did we pick CORS_middleware? (v2)"),
            (std::set<std::string>{"pick", "cors", "middleware", "v2"}));
}

// The gate of the issue: fusing the two rankings must not lose to either one.
TEST_F(RetrievalEvalTest, HybridRecallAt5IsAtLeastTheBetterSide) {
  auto index = EvalIndex::Build(*mems_);
  ASSERT_TRUE(index.ok()) << index.status().message();
  EXPECT_EQ((*index)->size(), mems_->size());

  std::vector<ModeMetrics> rows;
  for (auto mode :
       {memory::SearchMode::kKeyword, memory::SearchMode::kVector, memory::SearchMode::kHybrid}) {
    auto m = Evaluate(**index, *queries_, mode);
    ASSERT_TRUE(m.ok()) << m.status().message();
    rows.push_back(std::move(m).value());
  }
  std::cout << FormatTable(rows);
  const double keyword = rows[0].recall5, vector = rows[1].recall5, hybrid = rows[2].recall5;
  EXPECT_GE(hybrid, std::max(keyword, vector) - 1e-9)
      << "hybrid recall@5 below the better single mode (table above)";
}

}  // namespace
}  // namespace ds::retrieval_eval
