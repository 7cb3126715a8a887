// KeywordIndex and FtsTokenizer: tokens as FTS5 makes them, BM25 scores equal
// to bm25(memory_fts) on a real migrated database (also after deletes,
// re-indexing and compaction), filters, the posting budget, and searches
// racing writes.
#include "memory/keyword_index.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "memory/fts_query.h"
#include "test_util.h"

namespace ds::memory {
namespace {

std::unique_ptr<FtsTokenizer> MemoryTokenizer() {
  auto t = FtsTokenizer::Open(kMemoryFtsTokenizer);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<std::string> Tokens(const FtsTokenizer& t, std::string_view text) {
  std::vector<std::string> out;
  EXPECT_TRUE(t.Tokenize(text, FtsTokenizer::Mode::kDocument, [&](std::string_view token) {
                 out.emplace_back(token);
               }).ok());
  return out;
}

TEST(FtsTokenizerTest, StemsFoldsCaseAndDiacriticsLikeTheTable) {
  auto t = MemoryTokenizer();
  ASSERT_TRUE(t);
  EXPECT_EQ(Tokens(*t, "Running CAFÉ-au-lait, connections!"),
            (std::vector<std::string>{"run", "cafe", "au", "lait", "connect"}));
  EXPECT_TRUE(Tokens(*t, "").empty());
  EXPECT_TRUE(Tokens(*t, "[] -- ... ()").empty());
  // Invalid UTF-8 is tokenized, not rejected (FTS5 stores such text too).
  EXPECT_FALSE(Tokens(*t, std::string("ok \xff\xfe word")).empty());
}

TEST(FtsTokenizerTest, BadSpecsAreErrors) {
  EXPECT_EQ(FtsTokenizer::Open("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FtsTokenizer::Open("no_such_tokenizer").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FtsTokenizer::Open("unicode61 no_such_option 1").status().code(),
            StatusCode::kInvalidArgument);
}

VectorMeta Meta(uint32_t type_bit = 1, bool live = true) {
  VectorMeta m;
  m.content_type_bit = type_bit;
  m.live = live;
  return m;
}

// A migrated database and a KeywordIndex kept in step with its memories, so
// every ranking can be compared with FTS5's own over memory_fts.
class KeywordIndexVsFts5 : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb();
    ASSERT_TRUE(db_);
    KeywordIndexOptions opts;
    opts.posting_budget = 1u << 30;  // score everything, as FTS5 does
    index_ = std::make_unique<KeywordIndex>(MemoryTokenizer(), opts);
    ASSERT_TRUE(db_->Write([](Connection& c) {
                     return c.Exec(
                         "INSERT INTO projects(id, name, root_path, created_at) VALUES"
                         " ('pa', 'a', '/a', '2026-01-01'), ('pb', 'b', '/b', '2026-01-01')");
                   })
                    .ok());
  }

  int64_t Insert(const std::string& project, const std::string& content,
                 const std::string& keywords = "[]") {
    int64_t id = 0;
    Status st = db_->Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(Stmt s,
                          c.Prepare("INSERT INTO semantic_memory(project_id, content, content_type,"
                                    " content_format, source, keywords, content_hash, created_at,"
                                    " updated_at) VALUES (?, ?, 'learning', 'text', 'api', ?, ?,"
                                    " '2026-01-01', '2026-01-01')"));
      s.Bind(1, project).Bind(2, content).Bind(3, keywords).Bind(4, std::to_string(next_hash_++));
      DS_RETURN_IF_ERROR(s.Run());
      id = c.LastInsertRowid();
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(index_->Upsert(project, id, content, keywords, Meta()).ok());
    project_of_[id] = project;
    return id;
  }
  void Delete(int64_t id) {
    ASSERT_TRUE(db_->Write([&](Connection& c) -> Status {
                     DS_ASSIGN_OR_RETURN(Stmt s,
                                         c.Prepare("DELETE FROM semantic_memory WHERE id=?"));
                     s.Bind(1, id);
                     return s.Run();
                   })
                    .ok());
    index_->Remove(id);
    project_of_.erase(id);
  }
  void Rewrite(int64_t id, const std::string& content) {
    ASSERT_TRUE(db_->Write([&](Connection& c) -> Status {
                     DS_ASSIGN_OR_RETURN(
                         Stmt s, c.Prepare("UPDATE semantic_memory SET content=? WHERE id=?"));
                     s.Bind(1, content).Bind(2, id);
                     return s.Run();
                   })
                    .ok());
    ASSERT_TRUE(index_->Upsert(project_of_[id], id, content, "[]", Meta()).ok());
  }

  // FTS5's scores for the query's terms, restricted to `project`.
  std::map<int64_t, double> Fts5Scores(const std::string& project, const std::string& query) {
    std::map<int64_t, double> out;
    std::string match = BuildFtsQuery(query);
    if (match.empty()) return out;
    EXPECT_TRUE(db_->Read([&](Connection& c) -> Status {
                     DS_ASSIGN_OR_RETURN(
                         Stmt s, c.Prepare("SELECT rowid, bm25(memory_fts) FROM memory_fts WHERE"
                                           " memory_fts MATCH ?"));
                     s.Bind(1, match);
                     for (;;) {
                       DS_ASSIGN_OR_RETURN(bool row, s.Step());
                       if (!row) break;
                       if (project_of_[s.Int(0)] == project) out[s.Int(0)] = s.Double(1);
                     }
                     return Status::Ok();
                   })
                    .ok());
    return out;
  }
  void ExpectSameAsFts5(const std::string& project, const std::string& query) {
    SCOPED_TRACE("query: " + query + " in " + project);
    auto expected = Fts5Scores(project, query);
    auto hits = index_->Search(project, query, 100000, 0, false);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    std::map<int64_t, double> got;
    for (const auto& h : *hits) got[h.memory_id] = h.bm25;
    ASSERT_EQ(got.size(), expected.size());
    for (const auto& [id, score] : expected) {
      ASSERT_TRUE(got.count(id)) << "missing id " << id;
      EXPECT_NEAR(got[id], score, 1e-9 * std::max(1.0, std::fabs(score))) << "id " << id;
    }
    for (size_t i = 1; i < hits->size(); ++i) {
      EXPECT_LE((*hits)[i - 1].bm25, (*hits)[i].bm25) << "not best first at " << i;
    }
  }

  std::unique_ptr<Database> db_;
  std::unique_ptr<KeywordIndex> index_;
  std::map<int64_t, std::string> project_of_;
  int next_hash_ = 0;
};

const char* const kWords[] = {"parser",  "parsing", "tokens",     "sqlite",  "vector", "index",
                              "running", "runs",    "connection", "connect", "café",   "cafe",
                              "lease",   "worker",  "retry",      "timeout", "jwt",    "auth",
                              "the",     "a",       "of",         "and",     "HNSW",   "graph"};

std::string RandomText(std::mt19937& rng, int min_words, int max_words) {
  std::uniform_int_distribution<int> n(min_words, max_words);
  std::uniform_int_distribution<size_t> w(0, std::size(kWords) - 1);
  std::string text;
  for (int i = n(rng); i > 0; --i) {
    if (!text.empty()) text += (rng() % 5 == 0) ? ", " : " ";
    text += kWords[w(rng)];
  }
  return text;
}

const char* const kQueries[] = {"parser",
                                "running connection timeout",
                                "CAFE",
                                "the a of and",
                                "jwt auth retry worker lease",
                                "hnsw-graph: vector index?",
                                "nothing-matches-this zzz"};

TEST_F(KeywordIndexVsFts5, ScoresEqualBm25OfMemoryFts) {
  std::mt19937 rng(7);
  for (int i = 0; i < 400; ++i) {
    Insert(i % 3 == 0 ? "pb" : "pa", RandomText(rng, 0, 40),
           i % 7 == 0 ? "[\"auth\",\"graph\"]" : "[]");
  }
  for (const char* q : kQueries) {
    ExpectSameAsFts5("pa", q);
    ExpectSameAsFts5("pb", q);
  }
}

TEST_F(KeywordIndexVsFts5, StatisticsFollowDeletesRewritesAndCompaction) {
  std::mt19937 rng(11);
  std::vector<int64_t> ids;
  for (int i = 0; i < 600; ++i) ids.push_back(Insert(i % 2 ? "pa" : "pb", RandomText(rng, 1, 30)));
  // Enough removals from one partition to compact it (a quarter, >= 64).
  for (size_t i = 0; i < ids.size(); i += 3) Delete(ids[i]);
  for (size_t i = 1; i < ids.size(); i += 9) Rewrite(ids[i], RandomText(rng, 1, 30));
  for (const char* q : kQueries) {
    ExpectSameAsFts5("pa", q);
    ExpectSameAsFts5("pb", q);
  }
  EXPECT_EQ(index_->Size(), project_of_.size());
}

TEST_F(KeywordIndexVsFts5, AMemoryMovedToAnotherProjectIsFoundOnlyThere) {
  int64_t id = Insert("pa", "a lonely parser");
  ASSERT_TRUE(index_->Upsert("pb", id, "a lonely parser", "[]", Meta()).ok());
  auto in_a = index_->Search("pa", "parser", 10, 0, false);
  auto in_b = index_->Search("pb", "parser", 10, 0, false);
  ASSERT_TRUE(in_a.ok() && in_b.ok());
  EXPECT_TRUE(in_a->empty());
  ASSERT_EQ(in_b->size(), 1u);
  EXPECT_EQ((*in_b)[0].memory_id, id);
  EXPECT_EQ(index_->Size(), 1u);
}

TEST(KeywordIndexTest, FiltersByTypeLivenessAndAccept) {
  KeywordIndex index(MemoryTokenizer());
  ASSERT_TRUE(index.Upsert("p", 1, "deploy script", "[]", Meta(1, true)).ok());
  ASSERT_TRUE(index.Upsert("p", 2, "deploy notes", "[]", Meta(2, true)).ok());
  ASSERT_TRUE(index.Upsert("p", 3, "deploy archived", "[]", Meta(1, false)).ok());
  auto ids = [&](uint32_t mask, bool include_dead, std::function<bool(int64_t)> accept = {}) {
    std::vector<int64_t> out;
    auto hits = index.Search("p", "deploy", 10, mask, include_dead, accept);
    EXPECT_TRUE(hits.ok());
    for (const auto& h : *hits) out.push_back(h.memory_id);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(ids(0, false), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ids(0, true), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ids(1, false), (std::vector<int64_t>{1}));
  EXPECT_EQ(ids(0, true, [](int64_t id) { return id != 2; }), (std::vector<int64_t>{1, 3}));
  index.SetMeta(3, Meta(1, true));
  EXPECT_EQ(ids(1, false), (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(index.Search("elsewhere", "deploy", 10, 0, false)->empty());
  EXPECT_TRUE(index.Search("p", "", 10, 0, false)->empty());
  EXPECT_TRUE(index.Search("p", "deploy", 0, 0, false)->empty());
}

TEST(KeywordIndexTest, ABudgetKeepsTheRarestTermsAndTheNewestMatches) {
  KeywordIndexOptions opts;
  opts.posting_budget = 50;
  KeywordIndex index(MemoryTokenizer(), opts);
  // "common" in 200 memories; "rare" only in the oldest one.
  for (int64_t id = 1; id <= 200; ++id) {
    ASSERT_TRUE(index.Upsert("p", id, id == 1 ? "common rare" : "common", "[]", Meta()).ok());
  }
  // The rare term is kept, the common one (over the budget) dropped: only
  // the rare memory matches.
  auto both = index.Search("p", "common rare", 10, 0, false);
  ASSERT_TRUE(both.ok());
  ASSERT_EQ(both->size(), 1u);
  EXPECT_EQ((*both)[0].memory_id, 1);
  // The common term alone: its newest 50 matches are scored, so the oldest
  // memories cannot appear; equal scores rank the newer first.
  auto common = index.Search("p", "common", 10, 0, false);
  ASSERT_TRUE(common.ok());
  ASSERT_EQ(common->size(), 10u);
  for (const auto& h : *common) EXPECT_GT(h.memory_id, 150);
  EXPECT_EQ((*common)[0].memory_id, 200);
}

TEST(KeywordIndexTest, ChurningTextDoesNotGrowTheIndex) {
  KeywordIndex index(MemoryTokenizer());
  ASSERT_TRUE(index.Upsert("p", 1, "a stable memory about tracing", "[]", Meta()).ok());
  // Each round stores text with tokens never seen before, then drops it
  // (rewritten or deleted), as tool output full of ids and hashes would.
  auto churn = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string unique = "tok" + std::to_string(i) + "x tracing";
      ASSERT_TRUE(index.Upsert("p", 2, unique, "[]", Meta()).ok());
      if (i % 2 == 0) index.Remove(2);
    }
  };
  churn(0, 200);
  const size_t after_warmup = index.MemoryBytes();
  churn(200, 20200);
  // Dead slots wait for compaction (up to a quarter of the partition, at
  // least 64), so the size moves a little; 20,000 leaked terms would be
  // over a megabyte.
  EXPECT_LT(index.MemoryBytes(), after_warmup + 64 * 1024) << "the dictionary or postings grew";
  // The freed term ids are reused without mixing old postings into new terms.
  auto old_token = index.Search("p", "tok5x", 10, 0, false);
  ASSERT_TRUE(old_token.ok());
  EXPECT_TRUE(old_token->empty());
  auto latest = index.Search("p", "tok20199x", 10, 0, false);
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(latest->size(), 1u);
  EXPECT_EQ((*latest)[0].memory_id, 2);
  auto shared = index.Search("p", "tracing", 10, 0, false);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(shared->size(), 2u);
}

TEST(KeywordIndexTest, SearchesRacingWritesSeeConsistentIndexes) {
  KeywordIndex index(MemoryTokenizer());
  std::atomic<bool> stop{false};
  std::atomic<int> searches{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop) {
        auto hits = index.Search("p", "alpha beta", 5, 0, false);
        ASSERT_TRUE(hits.ok());
        for (const auto& h : *hits) ASSERT_LT(h.bm25, 0);
        ++searches;
      }
    });
  }
  for (int64_t id = 1; id <= 3000; ++id) {
    ASSERT_TRUE(
        index.Upsert("p", id % 500, id % 2 ? "alpha words" : "beta words", "[]", Meta()).ok());
    if (id % 7 == 0) index.Remove(id % 500);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(searches.load(), 0);
  EXPECT_LE(index.Size(), 500u);
}

}  // namespace
}  // namespace ds::memory
