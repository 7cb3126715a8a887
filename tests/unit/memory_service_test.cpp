// MemoryService against a real migrated SQLite file: store/dedup/supersede,
// lifecycle (forget, delete, update), batches, search modes and filters,
// degraded search with a failing embedder, re-embedding and index loading.
#include "memory/memory_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>

#include "core/clock.h"
#include "core/id.h"
#include "memory/codec.h"
#include "tasks/task_service.h"
#include "test_util.h"

namespace ds::memory {
namespace {

// An embedder that is down: every call is Unavailable.
class FailingEmbedder : public Embedder {
 public:
  const std::string& model() const override { return model_; }
  int dim() const override { return 384; }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>&) override {
    ++calls;
    return Status::Unavailable("embedding provider unreachable (test)");
  }
  std::atomic<int> calls{0};

 private:
  std::string model_ = "failing-test-384";
};

// The hash embedder that can be switched off (same model either way).
class SwitchableEmbedder : public Embedder {
 public:
  const std::string& model() const override { return inner_.model(); }
  int dim() const override { return inner_.dim(); }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) override {
    if (down) return Status::Unavailable("embedder down (test)");
    return inner_.Embed(texts);
  }
  std::atomic<bool> down{false};

 private:
  HashEmbedder inner_;
};

MemoryInput In(const std::string& content, const std::string& type = "learning") {
  MemoryInput in;
  in.content = content;
  in.content_type = type;
  return in;
}

std::vector<int64_t> HitIds(const SearchResult& r) {
  std::vector<int64_t> out;
  for (const auto& h : r.hits) out.push_back(h.memory.id);
  return out;
}

bool Contains(const std::vector<int64_t>& v, int64_t id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

std::vector<int64_t> ListIds(const MemoryService::Page& p) {
  std::vector<int64_t> out;
  for (const auto& m : p.items) out.push_back(m.id);
  return out;
}

// Every test runs twice: keyword search from FTS5 (one-shot commands) and
// from the in-memory KeywordIndex (servers); they must behave the same.
class MemoryServiceTest : public ::testing::TestWithParam<MemoryService::Indexes> {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb(&path_);
    ASSERT_TRUE(db_);
    svc_ = std::make_unique<MemoryService>(*db_, embedder_);
    ASSERT_TRUE(svc_->LoadIndex(GetParam()).ok());
  }

  Memory Put(const MemoryInput& in) { return PutWith(*svc_, in); }
  static Memory PutWith(MemoryService& svc, const MemoryInput& in) {
    auto r = svc.Store(in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    EXPECT_FALSE(r->deduplicated);
    return r->memory;
  }

  SearchResult Find(const std::string& query, SearchMode mode = SearchMode::kHybrid,
                    MemoryFilter f = {}, std::optional<double> min_similarity = std::nullopt) {
    return FindWith(*svc_, query, mode, std::move(f), min_similarity);
  }
  static SearchResult FindWith(MemoryService& svc, const std::string& query, SearchMode mode,
                               MemoryFilter f = {},
                               std::optional<double> min_similarity = std::nullopt) {
    SearchQuery q;
    q.query = query;
    q.mode = mode;
    q.filter = std::move(f);
    q.min_similarity = min_similarity;
    auto r = svc.Search(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : SearchResult{};
  }

  int64_t Count(const std::string& sql, const std::string& arg = "") {
    int64_t n = -1;
    Status st = db_->Read([&](Connection& c) -> Status {
      auto s = c.Prepare(sql);
      if (!s.ok()) return s.status();
      if (!arg.empty()) s->Bind(1, arg);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      n = s->Int(0);
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.ToString() << " for " << sql;
    return n;
  }
  // Rows in the FTS index (not the content table) matching one term.
  int64_t FtsHits(const std::string& term) {
    return Count("SELECT count(*) FROM memory_fts WHERE memory_fts MATCH ?", "\"" + term + "\"");
  }
  void ExpectFtsIntact() {
    Status st = db_->Write([](Connection& c) {
      return c.Exec("INSERT INTO memory_fts(memory_fts) VALUES('integrity-check')");
    });
    EXPECT_TRUE(st.ok()) << "FTS index disagrees with semantic_memory: " << st.ToString();
  }
  std::optional<Vector> StoredVector(int64_t id) {
    std::optional<Vector> out;
    Status st = db_->Read([&](Connection& c) -> Status {
      auto s = c.Prepare("SELECT vec FROM memory_vectors WHERE memory_id = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, id);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (*row) {
        auto blob = s->Blob(0);
        Vector v(blob.size() / sizeof(float));
        std::memcpy(v.data(), blob.data(), v.size() * sizeof(float));
        out = std::move(v);
      }
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok());
    return out;
  }

  std::string path_;
  std::unique_ptr<Database> db_;
  HashEmbedder embedder_;
  std::unique_ptr<MemoryService> svc_;
};

TEST_P(MemoryServiceTest, StoreThenGet) {
  MemoryInput in = In("Use BEGIN IMMEDIATE for every write transaction", "decision");
  in.content_format = "markdown";
  in.keywords = {"sqlite", "locking"};
  in.relevance_score = 0.8;
  in.pinned = true;
  in.source = "cli";
  in.file_path = "docs/adr/0001.md";
  in.session_id = std::nullopt;
  auto r = svc_->Store(in);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->deduplicated);
  EXPECT_EQ(r->redactions, 0);
  EXPECT_TRUE(r->superseded.empty());
  const Memory& m = r->memory;
  EXPECT_GT(m.id, 0);
  EXPECT_TRUE(IsValidId(m.project_id, "prj")) << m.project_id;
  EXPECT_EQ(m.content, in.content);
  EXPECT_EQ(m.content_type, "decision");
  EXPECT_EQ(m.content_format, "markdown");
  EXPECT_EQ(m.source, "cli");
  EXPECT_EQ(m.file_path, "docs/adr/0001.md");
  EXPECT_EQ(m.keywords, (std::vector<std::string>{"sqlite", "locking"}));
  EXPECT_DOUBLE_EQ(m.relevance_score, 0.8);
  EXPECT_TRUE(m.pinned);
  EXPECT_FALSE(m.archived);
  EXPECT_FALSE(m.superseded_by.has_value());
  EXPECT_EQ(m.content_hash.size(), 32u);
  EXPECT_TRUE(ParseTimestamp(m.created_at).has_value()) << m.created_at;
  EXPECT_EQ(m.access_count, 0);

  auto got = svc_->Get(m.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->content, m.content);
  EXPECT_EQ(got->content_hash, m.content_hash);
  EXPECT_EQ(got->keywords, m.keywords);
  EXPECT_EQ(got->created_at, m.created_at);
  EXPECT_EQ(svc_->Get(m.id + 1000).status().code(), StatusCode::kNotFound);

  // The vector is stored with the memory, under the embedder's model.
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors WHERE model = ?", embedder_.model()), 1);
  auto vec = StoredVector(m.id);
  ASSERT_TRUE(vec.has_value());
  EXPECT_EQ(*vec, embedder_.EmbedOne(in.content + "\nsqlite\nlocking"));
  auto stats = svc_->Stats(std::nullopt);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->memories, 1);
  EXPECT_EQ(stats->vectors, 1);
  EXPECT_EQ(stats->indexed, 1);
  EXPECT_EQ(stats->dim, 384);
  EXPECT_EQ(stats->model, embedder_.model());
  EXPECT_EQ(stats->vector_bytes, 384 * 4);
  // Keywords are searchable too.
  EXPECT_TRUE(Contains(HitIds(Find("locking", SearchMode::kKeyword)), m.id));
}

TEST_P(MemoryServiceTest, SecretsAreRedactedBeforeStoring) {
  auto r = svc_->Store(In("deploy with password=hunter2hunter2 and AKIAIOSFODNN7EXAMPLE"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->redactions, 2);
  EXPECT_EQ(r->memory.content.find("hunter2hunter2"), std::string::npos);
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory WHERE content LIKE '%hunter2%'"), 0);
  EXPECT_EQ(FtsHits("hunter2hunter2"), 0);
  EXPECT_EQ(FtsHits("deploy"), 1);
}

TEST_P(MemoryServiceTest, DedupSameProjectNewMemoryInOtherProject) {
  Memory a = Put(In("The reaper runs every 30 seconds"));
  auto again = svc_->Store(In("The reaper runs every 30 seconds"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->memory.id, a.id);
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory"), 1);

  MemoryInput other = In("The reaper runs every 30 seconds");
  other.project = "other";
  auto o = svc_->Store(other);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->deduplicated);
  EXPECT_NE(o->memory.id, a.id);
  EXPECT_NE(o->memory.project_id, a.project_id);
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory"), 2);
  // Each project searches only its own.
  MemoryFilter f;
  f.project = "other";
  EXPECT_EQ(HitIds(Find("reaper", SearchMode::kHybrid, f)), (std::vector<int64_t>{o->memory.id}));
  EXPECT_EQ(HitIds(Find("reaper", SearchMode::kVector, f)), (std::vector<int64_t>{o->memory.id}));
  EXPECT_EQ(HitIds(Find("reaper")), (std::vector<int64_t>{a.id}));
  // Different content: a new memory.
  EXPECT_NE(Put(In("The reaper runs every 60 seconds")).id, a.id);
}

TEST_P(MemoryServiceTest, NewerFileSnapshotSupersedesOlder) {
  auto snap = [](const std::string& content, const std::string& file = "src/lexer.cpp",
                 const std::string& type = "code") {
    MemoryInput in = In(content, type);
    in.file_path = file;
    in.content_format = "cpp";
    return in;
  };
  Memory v1 = Put(snap("int LexAlpha() { return tokenize_alpha(); }"));
  auto r2 = svc_->Store(snap("int LexBeta() { return tokenize_beta(); }"));
  ASSERT_TRUE(r2.ok());
  Memory v2 = r2->memory;
  EXPECT_EQ(r2->superseded, (std::vector<int64_t>{v1.id}));
  auto old = svc_->Get(v1.id);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->superseded_by, v2.id);
  EXPECT_FALSE(old->archived);

  // Other files and other content types are not superseded.
  Memory other_file = Put(snap("int LexGamma() { return tokenize_alpha(); }", "src/parser.cpp"));
  Memory doc_same_file =
      Put(snap("LexAlpha documentation: tokenize_alpha splits", "src/lexer.cpp", "documentation"));
  EXPECT_FALSE(svc_->Get(other_file.id)->superseded_by.has_value());
  EXPECT_FALSE(svc_->Get(doc_same_file.id)->superseded_by.has_value());
  EXPECT_FALSE(svc_->Get(v2.id)->superseded_by.has_value());

  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    auto ids = HitIds(Find("LexAlpha tokenize_alpha", mode));
    EXPECT_FALSE(Contains(ids, v1.id))
        << "superseded memory in default search, mode " << static_cast<int>(mode);
    EXPECT_TRUE(Contains(ids, other_file.id) || mode == SearchMode::kKeyword);
    MemoryFilter archived;
    archived.include_archived = true;
    EXPECT_TRUE(Contains(HitIds(Find("LexAlpha tokenize_alpha", mode, archived)), v1.id))
        << "include_archived, mode " << static_cast<int>(mode);
  }
  MemoryFilter lf;
  auto page = svc_->List(lf);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(Contains(ListIds(*page), v1.id));
  EXPECT_TRUE(Contains(ListIds(*page), v2.id));
  lf.include_archived = true;
  EXPECT_TRUE(Contains(ListIds(*svc_->List(lf)), v1.id));
  auto stats = svc_->Stats(std::nullopt);
  EXPECT_EQ(stats->superseded, 1);

  // A third snapshot supersedes the second (the first stays superseded by v2).
  auto r3 = svc_->Store(snap("int LexDelta() {}"));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->superseded, (std::vector<int64_t>{v2.id}));
  EXPECT_EQ(svc_->Get(v2.id)->superseded_by, r3->memory.id);
}

TEST_P(MemoryServiceTest, SnapshotsOfOneFileInOneBatch) {
  auto snap = [](const std::string& content) {
    MemoryInput in = In(content, "code");
    in.file_path = "src/batch.cpp";
    return in;
  };
  auto r =
      svc_->StoreBatch({snap("int Penguin() { return 1; }"), snap("int Penguin() { return 2; }")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  int64_t first = (*r)[0].memory.id, second = (*r)[1].memory.id;
  EXPECT_EQ((*r)[1].superseded, (std::vector<int64_t>{first}));
  EXPECT_EQ(svc_->Get(first)->superseded_by, second);
  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    EXPECT_EQ(HitIds(Find("Penguin", mode, {}, -1.0)), (std::vector<int64_t>{second}))
        << "mode " << static_cast<int>(mode);
  }
}

TEST_P(MemoryServiceTest, RestoringAnOlderFileSnapshotMakesItCurrent) {
  auto snap = [](const std::string& content) {
    MemoryInput in = In(content, "code");
    in.file_path = "src/config.cpp";
    return in;
  };
  Memory v1 = Put(snap("kTimeout = 30; // original alphaversion"));
  Memory v2 = Put(snap("kTimeout = 60; // changed betaversion"));
  ASSERT_EQ(svc_->Get(v1.id)->superseded_by, v2.id);
  // The file is reverted: its current snapshot equals v1 again.
  auto back = svc_->Store(snap("kTimeout = 30; // original alphaversion"));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->memory.superseded_by.has_value())
      << "the file's current snapshot is returned as superseded";
  EXPECT_TRUE(Contains(HitIds(Find("alphaversion", SearchMode::kKeyword)), back->memory.id))
      << "the file's current content cannot be found";
  EXPECT_FALSE(Contains(HitIds(Find("betaversion", SearchMode::kKeyword)), v2.id))
      << "the stale snapshot is still current";
}

TEST_P(MemoryServiceTest, DeletingTheNewestSnapshotRevivesTheOlder) {
  auto snap = [](const std::string& content) {
    MemoryInput in = In(content, "code");
    in.file_path = "src/a.cpp";
    return in;
  };
  Memory v1 = Put(snap("void Frobnicate() { alpha(); }"));
  Memory v2 = Put(snap("void Frobnicate() { beta(); }"));
  EXPECT_FALSE(Contains(HitIds(Find("Frobnicate", SearchMode::kVector)), v1.id));
  ASSERT_TRUE(svc_->Delete(v2.id).ok());
  auto old = svc_->Get(v1.id);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->superseded_by.has_value());
  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    EXPECT_EQ(HitIds(Find("Frobnicate", mode)), (std::vector<int64_t>{v1.id}))
        << "mode " << static_cast<int>(mode);
  }
  ExpectFtsIntact();
}

TEST_P(MemoryServiceTest, ForgetExcludesFromSearchAndStoringAgainRevives) {
  Memory keep = Put(In("lease heartbeat keeps the claim alive"));
  Memory gone = Put(In("lease expiry returns the task to pending"));
  auto f = svc_->Forget(gone.id);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->archived);
  EXPECT_TRUE(svc_->Get(gone.id)->archived);
  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    auto ids = HitIds(Find("lease expiry pending", mode));
    EXPECT_FALSE(Contains(ids, gone.id))
        << "forgotten memory found, mode " << static_cast<int>(mode);
    EXPECT_TRUE(Contains(ids, keep.id)) << "mode " << static_cast<int>(mode);
  }
  MemoryFilter lf;
  EXPECT_FALSE(Contains(ListIds(*svc_->List(lf)), gone.id));
  lf.include_archived = true;
  EXPECT_TRUE(Contains(ListIds(*svc_->List(lf)), gone.id));
  EXPECT_EQ(svc_->Stats(std::nullopt)->archived, 1);
  EXPECT_EQ(svc_->Forget(999999).status().code(), StatusCode::kNotFound);

  auto again = svc_->Store(In("lease expiry returns the task to pending"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->memory.id, gone.id);
  EXPECT_FALSE(again->memory.archived);
  EXPECT_TRUE(Contains(HitIds(Find("lease expiry pending", SearchMode::kVector)), gone.id));
  EXPECT_TRUE(Contains(HitIds(Find("lease expiry pending", SearchMode::kKeyword)), gone.id));
}

TEST_P(MemoryServiceTest, DeleteRemovesRowFtsAndVector) {
  Memory keep = Put(In("zanzibar keeps its row"));
  Memory del = Put(In("quetzalcoatl is deleted"));
  ASSERT_EQ(FtsHits("quetzalcoatl"), 1);
  ASSERT_TRUE(svc_->Delete(del.id).ok());
  EXPECT_EQ(svc_->Get(del.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(FtsHits("quetzalcoatl"), 0) << "FTS row left behind";
  EXPECT_EQ(FtsHits("zanzibar"), 1);
  EXPECT_EQ(
      Count("SELECT count(*) FROM memory_vectors WHERE memory_id = " + std::to_string(del.id)), 0);
  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    EXPECT_FALSE(Contains(HitIds(Find("quetzalcoatl is deleted", mode)), del.id));
  }
  // With no similarity floor every indexed memory is a candidate: only `keep` is left.
  EXPECT_EQ(HitIds(Find("quetzalcoatl is deleted", SearchMode::kVector, {}, -1.0)),
            (std::vector<int64_t>{keep.id}));
  EXPECT_EQ(svc_->Stats(std::nullopt)->indexed, 1);
  EXPECT_EQ(svc_->Delete(del.id).code(), StatusCode::kNotFound);
  ExpectFtsIntact();
}

TEST_P(MemoryServiceTest, UpdateContentMovesFtsAndVector) {
  Memory m = Put(In("original wording about xylophones"));
  Memory other = Put(In("an unrelated note about databases"));
  MemoryPatch p;
  p.content = "replacement wording about trombones";
  auto u = svc_->Update(m.id, p);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->content, "replacement wording about trombones");
  EXPECT_NE(u->content_hash, m.content_hash);
  EXPECT_EQ(svc_->Get(m.id)->content, "replacement wording about trombones");

  EXPECT_TRUE(Contains(HitIds(Find("trombones", SearchMode::kKeyword)), m.id));
  EXPECT_FALSE(Contains(HitIds(Find("xylophones", SearchMode::kKeyword)), m.id));
  EXPECT_EQ(FtsHits("xylophones"), 0);
  EXPECT_EQ(FtsHits("trombones"), 1);
  // The stored and indexed vector follow the new content.
  EXPECT_EQ(StoredVector(m.id), embedder_.EmbedOne("replacement wording about trombones"));
  auto vec = Find("replacement wording about trombones", SearchMode::kVector);
  ASSERT_FALSE(vec.hits.empty());
  EXPECT_EQ(vec.hits[0].memory.id, m.id);
  ASSERT_TRUE(vec.hits[0].similarity.has_value());
  EXPECT_NEAR(*vec.hits[0].similarity, 1.0, 1e-5);
  auto old = Find("original wording about xylophones", SearchMode::kVector);
  for (const auto& h : old.hits) {
    if (h.memory.id == m.id) {
      EXPECT_LT(*h.similarity, 0.9) << "old vector still indexed";
    }
  }

  // Keywords only: FTS and vector follow too.
  MemoryPatch k;
  k.keywords = std::vector<std::string>{"brass", "orchestra"};
  ASSERT_TRUE(svc_->Update(m.id, k).ok());
  EXPECT_TRUE(Contains(HitIds(Find("orchestra", SearchMode::kKeyword)), m.id));
  EXPECT_EQ(StoredVector(m.id),
            embedder_.EmbedOne("replacement wording about trombones\nbrass\norchestra"));

  // Type change only: the vector index filter follows.
  MemoryPatch t;
  t.content_type = "decision";
  ASSERT_TRUE(svc_->Update(m.id, t).ok());
  MemoryFilter decisions;
  decisions.content_types = {"decision"};
  EXPECT_EQ(HitIds(Find("trombones", SearchMode::kVector, decisions)),
            (std::vector<int64_t>{m.id}));
  MemoryFilter learnings;
  learnings.content_types = {"learning"};
  EXPECT_EQ(HitIds(Find("trombones", SearchMode::kVector, learnings, -1.0)),
            (std::vector<int64_t>{other.id}));

  // Content equal to another memory's is a conflict and changes nothing.
  MemoryPatch dup;
  dup.content = "an unrelated note about databases";
  auto c = svc_->Update(m.id, dup);
  EXPECT_EQ(c.status().code(), StatusCode::kConflict);
  EXPECT_EQ(svc_->Get(m.id)->content, "replacement wording about trombones");
  EXPECT_EQ(svc_->Update(424242, p).status().code(), StatusCode::kNotFound);
  ExpectFtsIntact();
}

TEST_P(MemoryServiceTest, BatchIsAllOrNothing) {
  MemoryInput bad = In("third item points at a plan that does not exist");
  bad.plan_id = NewId("pln");
  std::vector<MemoryInput> batch = {In("first batch item"), In("second batch item"), bad};
  batch[1].project = "brand-new-project";
  auto r = svc_->StoreBatch(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM projects WHERE name = 'brand-new-project'"), 0);
  EXPECT_EQ(FtsHits("first"), 0);
  EXPECT_EQ(svc_->Stats(std::nullopt)->indexed, 0);
  EXPECT_TRUE(Find("first batch item", SearchMode::kVector).hits.empty())
      << "index not rolled back";

  // A valid batch stores everything; a duplicate inside it is deduplicated.
  std::vector<MemoryInput> good = {In("first batch item"), In("second batch item"),
                                   In("first batch item")};
  auto ok = svc_->StoreBatch(good);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_FALSE((*ok)[0].deduplicated);
  EXPECT_FALSE((*ok)[1].deduplicated);
  EXPECT_TRUE((*ok)[2].deduplicated);
  EXPECT_EQ((*ok)[2].memory.id, (*ok)[0].memory.id);
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors"), 2);
  EXPECT_EQ(svc_->Stats(std::nullopt)->indexed, 2);
}

// Keyword search scores only the rows its rarest terms match (a posting
// budget), yet still finds what the rare term names; a term alone matching
// more than the budget is scored over its newest matches.
TEST_P(MemoryServiceTest, KeywordSearchPrunesCommonTermsAndStillFindsRareOnes) {
  std::vector<MemoryInput> batch;
  for (int i = 0; i < 4600; ++i) {
    batch.push_back(In("gateway timeout while calling upstream number " + std::to_string(i)));
    if (batch.size() == 1000) {
      ASSERT_TRUE(svc_->StoreBatch(batch).ok());
      batch.clear();
    }
  }
  ASSERT_TRUE(svc_->StoreBatch(batch).ok());
  std::vector<int64_t> zebras;
  for (int i = 0; i < 3; ++i) {
    zebras.push_back(Put(In("gateway zebra crossing incident " + std::to_string(i))).id);
  }
  MemoryFilter f;
  f.limit = 3;
  SearchResult r = Find("timeout at the gateway zebra", SearchMode::kKeyword, f);
  ASSERT_EQ(r.hits.size(), 3u);
  std::vector<int64_t> got;
  for (const auto& h : r.hits) got.push_back(h.memory.id);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, zebras);
  // "timeout" alone matches 4600 rows: still answered, from the newest.
  SearchResult common = Find("timeout", SearchMode::kKeyword, f);
  ASSERT_EQ(common.hits.size(), 3u);
  for (const auto& h : common.hits) EXPECT_GT(h.memory.id, 600) << "scored an old match";
}

TEST_P(MemoryServiceTest, KeywordMatchesOfASmallProjectOutrankedByAnotherAreFound) {
  // The big project's short memories outrank the small one's long memories
  // on bm25, so the top keyword matches are all the big project's: the
  // small project's hits must still come back (the exact second stage).
  std::vector<MemoryInput> batch;
  for (int i = 0; i < 400; ++i) {
    MemoryInput in = In("zebra " + std::to_string(i));
    in.project = "big";
    batch.push_back(in);
  }
  ASSERT_TRUE(svc_->StoreBatch(batch).ok());
  std::set<int64_t> small;
  for (int i = 0; i < 5; ++i) {
    MemoryInput in = In("a long note about the release checklist, the staging cluster, the " +
                        std::string("rollback plan and the on-call rota, which mentions a zebra ") +
                        "once, number " + std::to_string(i));
    in.project = "small";
    small.insert(Put(in).id);
  }
  MemoryFilter f;
  f.project = "small";
  f.limit = 5;
  auto ids = HitIds(Find("zebra", SearchMode::kKeyword, f));
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()), small);
  f.project = "big";
  ids = HitIds(Find("zebra", SearchMode::kKeyword, f));
  ASSERT_EQ(ids.size(), 5u);
  for (int64_t id : ids) EXPECT_EQ(small.count(id), 0u);
}

TEST_P(MemoryServiceTest, SearchModesReportTheirSides) {
  Memory auth = Put(In("authenticate users with signed session cookies"));
  Memory cache = Put(In("cache invalidation uses a write-through policy"));
  Memory both = Put(In("authentication middleware checks the session"));

  auto kw = Find("authentication", SearchMode::kKeyword);
  EXPECT_FALSE(kw.degraded);
  {
    auto ids = HitIds(kw);
    // Porter stemming: authentication and authenticate share a stem.
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()), (std::set<int64_t>{both.id, auth.id}));
  }
  EXPECT_TRUE(Find("invalidation", SearchMode::kKeyword).hits.size() == 1u);
  EXPECT_EQ(HitIds(Find("cookies", SearchMode::kKeyword)), (std::vector<int64_t>{auth.id}));
  for (const auto& h : kw.hits) {
    EXPECT_TRUE(h.keyword_rank.has_value());
    EXPECT_TRUE(h.bm25.has_value());
    EXPECT_FALSE(h.vector_rank.has_value());
    EXPECT_FALSE(h.similarity.has_value());
    EXPECT_GT(h.score, 0);
  }

  auto vec = Find("authentication", SearchMode::kVector);
  EXPECT_FALSE(vec.degraded);
  auto vids = HitIds(vec);
  ASSERT_GE(vids.size(), 2u);
  // Character trigrams let "authentication" meet "authenticate".
  EXPECT_TRUE(Contains({vids[0], vids[1]}, auth.id));
  EXPECT_TRUE(Contains({vids[0], vids[1]}, both.id));
  for (const auto& h : vec.hits) {
    EXPECT_TRUE(h.vector_rank.has_value());
    EXPECT_TRUE(h.similarity.has_value());
    EXPECT_FALSE(h.keyword_rank.has_value());
    EXPECT_FALSE(h.bm25.has_value());
  }
  for (size_t i = 1; i < vec.hits.size(); ++i) {
    EXPECT_GE(*vec.hits[i - 1].similarity, *vec.hits[i].similarity);
  }

  auto hyb = Find("authentication session", SearchMode::kHybrid);
  EXPECT_FALSE(hyb.degraded);
  ASSERT_FALSE(hyb.hits.empty());
  EXPECT_EQ(hyb.hits[0].memory.id, both.id);
  EXPECT_TRUE(hyb.hits[0].keyword_rank.has_value());
  EXPECT_TRUE(hyb.hits[0].vector_rank.has_value());
  EXPECT_TRUE(hyb.hits[0].similarity.has_value());
  EXPECT_TRUE(hyb.hits[0].bm25.has_value());
  // Default weights: keyword 1, vector the embedder's FusionWeight() (0.5 for hash).
  EXPECT_NEAR(hyb.hits[0].score,
              1.0 / (60 + *hyb.hits[0].keyword_rank) + 0.5 / (60 + *hyb.hits[0].vector_rank),
              1e-12);
  for (size_t i = 1; i < hyb.hits.size(); ++i) EXPECT_GE(hyb.hits[i - 1].score, hyb.hits[i].score);
  EXPECT_GE(hyb.took_ms, 0);

  // Weights: a zero keyword weight ranks purely by vector.
  SearchQuery q;
  q.query = "cache write-through";
  q.keyword_weight = 0;
  auto wr = svc_->Search(q);
  ASSERT_TRUE(wr.ok());
  ASSERT_FALSE(wr->hits.empty());
  EXPECT_EQ(wr->hits[0].memory.id, cache.id);

  // Limit.
  MemoryFilter one;
  one.limit = 1;
  EXPECT_EQ(Find("authentication session cache", SearchMode::kHybrid, one).hits.size(), 1u);
  // Text without terms: no keyword hits, no error.
  EXPECT_TRUE(Find("?!?", SearchMode::kKeyword).hits.empty());
  // FTS syntax in the query is just words.
  EXPECT_EQ(HitIds(Find("\"authentication\" AND (NEAR -session*", SearchMode::kKeyword)).size(),
            2u);
  // Access is recorded for returned hits (collected, then written at once).
  ASSERT_TRUE(svc_->FlushAccessCounts().ok());
  EXPECT_GE(svc_->Get(both.id)->access_count, 2);
  EXPECT_TRUE(svc_->Get(both.id)->last_accessed_at.has_value());
}

TEST_P(MemoryServiceTest, FiltersApplyToBothSides) {
  tasks::TaskService tasks(*db_);
  tasks::PlanInput pi;
  pi.title = "Plan";
  auto plan = tasks.CreatePlan(pi);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  tasks::PhaseInput ph;
  ph.name = "Phase";
  auto phase = tasks.CreatePhase(plan->id, ph);
  ASSERT_TRUE(phase.ok());
  tasks::TaskInput ti;
  ti.title = "Task";
  auto task = tasks.CreateTask(phase->id, ti);
  ASSERT_TRUE(task.ok()) << task.status().ToString();

  MemoryInput linked = In("widget rendering bug fixed in the canvas", "error");
  linked.task_id = task->id;
  linked.plan_id = plan->id;
  Memory err = Put(linked);
  Memory code = Put(In("widget rendering code path for the canvas", "code"));
  Memory dec = Put(In("widget rendering decision: use the canvas", "decision"));

  // Pin created_at so the date range is deterministic.
  Status st = db_->Write([&](Connection& c) -> Status {
    for (auto [id, ts] : {std::pair<int64_t, const char*>{err.id, "2025-01-10T00:00:00.000Z"},
                          {code.id, "2025-02-10T00:00:00.000Z"},
                          {dec.id, "2025-03-10T00:00:00.000Z"}}) {
      auto s = c.Prepare("UPDATE semantic_memory SET created_at = ? WHERE id = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, std::string(ts)).Bind(2, id);
      Status r = s->Run();
      if (!r.ok()) return r;
    }
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto set_of = [](const SearchResult& r) {
    auto v = HitIds(r);
    return std::set<int64_t>(v.begin(), v.end());
  };
  for (auto mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    SCOPED_TRACE("mode " + std::to_string(static_cast<int>(mode)));
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode)),
              (std::set<int64_t>{err.id, code.id, dec.id}));
    MemoryFilter types;
    types.content_types = {"code", "decision"};
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode, types)),
              (std::set<int64_t>{code.id, dec.id}));
    MemoryFilter by_task;
    by_task.task_id = task->id;
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode, by_task)), (std::set<int64_t>{err.id}));
    MemoryFilter by_plan;
    by_plan.plan_id = plan->id;
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode, by_plan)), (std::set<int64_t>{err.id}));
    MemoryFilter range;
    range.since = "2025-02-01T00:00:00.000Z";
    range.until = "2025-03-10T00:00:00.000Z";  // exclusive
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode, range)), (std::set<int64_t>{code.id}));
    MemoryFilter since;
    since.since = "2025-02-10T00:00:00.000Z";  // inclusive
    EXPECT_EQ(set_of(Find("widget rendering canvas", mode, since)),
              (std::set<int64_t>{code.id, dec.id}));
    MemoryFilter none;
    none.until = "2024-01-01T00:00:00.000Z";
    EXPECT_TRUE(Find("widget rendering canvas", mode, none).hits.empty());
  }
  // List applies the same filters.
  MemoryFilter lf;
  lf.task_id = task->id;
  EXPECT_EQ(ListIds(*svc_->List(lf)), (std::vector<int64_t>{err.id}));
  // Unknown project: NotFound, not an empty success or a crash.
  MemoryFilter unknown;
  unknown.project = "no-such-project";
  SearchQuery q;
  q.query = "widget";
  q.filter = unknown;
  EXPECT_EQ(svc_->Search(q).status().code(), StatusCode::kNotFound);
}

TEST_P(MemoryServiceTest, ListPaginatesNewestFirst) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Put(In("note number " + std::to_string(i))).id);
  std::vector<int64_t> seen;
  MemoryFilter f;
  f.limit = 2;
  int pages = 0;
  for (;;) {
    auto page = svc_->List(f);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& m : page->items) seen.push_back(m.id);
    ++pages;
    if (!page->next_cursor) break;
    f.cursor = page->next_cursor;
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<int64_t>(ids.rbegin(), ids.rend())));
  MemoryFilter bad;
  bad.cursor = "not-a-cursor";
  EXPECT_EQ(svc_->List(bad).status().code(), StatusCode::kInvalidArgument);
  // The default project reads as empty before anything is written to it.
  auto db2 = ds::testing::NewMigratedDb();
  HashEmbedder e2;
  MemoryService fresh(*db2, e2);
  auto empty = fresh.List({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->items.empty());
  EXPECT_TRUE(FindWith(fresh, "anything", SearchMode::kHybrid).hits.empty());
}

TEST_P(MemoryServiceTest, DegradedSearchWhenTheEmbedderFails) {
  FailingEmbedder failing;
  MemoryService svc(*db_, failing);
  ASSERT_TRUE(svc.LoadIndex(GetParam()).ok());
  // Stored with a failing embedder: the memory is kept, without a vector.
  auto r = svc.Store(In("graceful degradation keeps keyword search working"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(failing.calls.load(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM semantic_memory"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors"), 0);

  for (auto mode : {SearchMode::kHybrid, SearchMode::kVector}) {
    SearchQuery q;
    q.query = "degradation keyword";
    q.mode = mode;
    auto s = svc.Search(q);
    ASSERT_TRUE(s.ok()) << "a failing embedder must not fail search: " << s.status().ToString();
    EXPECT_TRUE(s->degraded) << "mode " << static_cast<int>(mode);
    EXPECT_FALSE(s->degraded_reason.empty());
    ASSERT_EQ(HitIds(*s), (std::vector<int64_t>{r->memory.id})) << "keyword results expected";
    EXPECT_TRUE(s->hits[0].keyword_rank.has_value());
    EXPECT_FALSE(s->hits[0].vector_rank.has_value());
  }
  SearchQuery kw;
  kw.query = "degradation";
  kw.mode = SearchMode::kKeyword;
  auto k = svc.Search(kw);
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->degraded) << "keyword mode does not need the embedder";
  ContextQuery cq;
  cq.query = "graceful degradation";
  auto ctx = svc.Context(cq);
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  EXPECT_TRUE(ctx->degraded);
  EXPECT_EQ(ctx->memory_ids, (std::vector<int64_t>{r->memory.id}));
  // Updates and deletes work without an embedder too.
  MemoryPatch p;
  p.content = "graceful degradation, edited offline";
  EXPECT_TRUE(svc.Update(r->memory.id, p).ok());
  EXPECT_TRUE(svc.Delete(r->memory.id).ok());
  // Reembed reports the failure instead of pretending.
  Put(In("something to embed"));
  EXPECT_FALSE(svc.Reembed().ok());
}

TEST_P(MemoryServiceTest, StoreWithFailingEmbedderThenReembed) {
  SwitchableEmbedder emb;
  MemoryService svc(*db_, emb);
  ASSERT_TRUE(svc.LoadIndex(GetParam()).ok());
  emb.down = true;
  Memory a = PutWith(svc, In("offline note about the parser"));
  MemoryInput with_kw = In("offline note about the lexer");
  with_kw.keywords = {"tokens"};
  Memory b = PutWith(svc, with_kw);
  MemoryPatch forget;
  forget.archived = true;
  Memory c = PutWith(svc, In("offline note that is forgotten"));
  ASSERT_TRUE(svc.Update(c.id, forget).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors"), 0);
  EXPECT_EQ(svc.Stats(std::nullopt)->indexed, 0);

  emb.down = false;
  auto before = FindWith(svc, "offline note", SearchMode::kVector);
  EXPECT_FALSE(before.degraded);
  EXPECT_TRUE(before.hits.empty()) << "nothing is indexed yet";

  auto n = svc.Reembed(2);  // smaller than the backlog: several rounds
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM memory_vectors"), 3);
  EXPECT_EQ(svc.Stats(std::nullopt)->indexed, 3);
  EXPECT_EQ(StoredVector(b.id), HashEmbedder().EmbedOne("offline note about the lexer\ntokens"));
  auto after = FindWith(svc, "offline note about the parser", SearchMode::kVector);
  ASSERT_FALSE(after.hits.empty());
  EXPECT_EQ(after.hits[0].memory.id, a.id);
  EXPECT_FALSE(Contains(HitIds(after), c.id)) << "archived memory live after re-embed";
  EXPECT_EQ(*svc.Reembed(), 0) << "nothing left to embed";
}

TEST_P(MemoryServiceTest, LoadIndexRestoresVectorsAndLiveness) {
  Memory a = Put(In("persistent vector for the scheduler"));
  MemoryInput s1 = In("scheduler snapshot one", "code");
  s1.file_path = "sched.cpp";
  Memory old = Put(s1);
  MemoryInput s2 = In("scheduler snapshot two", "code");
  s2.file_path = "sched.cpp";
  Memory cur = Put(s2);
  Memory forgotten = Put(In("scheduler note forgotten"));
  ASSERT_TRUE(svc_->Forget(forgotten.id).ok());

  // A second service over the same file (a restart) loads the same index.
  MemoryService restarted(*db_, embedder_);
  ASSERT_TRUE(restarted.LoadIndex(GetParam()).ok());
  EXPECT_EQ(restarted.Stats(std::nullopt)->indexed, 4);
  auto ids = HitIds(FindWith(restarted, "scheduler", SearchMode::kVector));
  EXPECT_TRUE(Contains(ids, a.id));
  EXPECT_TRUE(Contains(ids, cur.id));
  EXPECT_FALSE(Contains(ids, old.id)) << "superseded live after LoadIndex";
  EXPECT_FALSE(Contains(ids, forgotten.id)) << "archived live after LoadIndex";

  // A different model has none of these vectors; until it covers the
  // partition the previous model's ranking answers — one model per ranking.
  HashEmbedder small(64);
  MemoryService other_model(*db_, small);
  ASSERT_TRUE(other_model.LoadIndex(GetParam()).ok());
  EXPECT_EQ(other_model.Stats(std::nullopt)->indexed, 0);
  auto during = FindWith(other_model, "scheduler", SearchMode::kVector);
  EXPECT_EQ(during.vector_model, embedder_.model());
  ASSERT_TRUE(other_model.Reembed().ok());
  auto after = FindWith(other_model, "scheduler", SearchMode::kVector);
  EXPECT_EQ(after.vector_model, small.model());
}

TEST_P(MemoryServiceTest, ContextUsesSearchAndBudget) {
  for (int i = 0; i < 10; ++i) {
    Put(In("retry policy note " + std::to_string(i) + ": " + std::string(400, 'r')));
  }
  ContextQuery q;
  q.query = "retry policy";
  q.token_budget = 300;
  auto r = svc_->Context(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->degraded);
  EXPECT_LE(EstimateTokens(r->context), 300);
  EXPECT_LE(r->tokens, 300);
  EXPECT_TRUE(r->truncated);
  EXPECT_GE(r->memory_ids.size(), 2u);
  for (int64_t id : r->memory_ids) {
    EXPECT_NE(r->context.find("## Memory " + std::to_string(id) + " · learning"),
              std::string::npos);
  }
}

TEST_P(MemoryServiceTest, VectorMatchesBelowTheNoiseFloorAreDropped) {
  Memory exact = Put(In("lease reaper returns expired claims to pending"));
  Memory related = Put(In("the reaper expires leases"));
  Memory unrelated = Put(In("quarterly revenue spreadsheet totals"));
  const std::string query = "lease reaper returns expired claims to pending";
  auto def = Find(query, SearchMode::kVector);
  auto ids = HitIds(def);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], exact.id);
  EXPECT_TRUE(Contains(ids, related.id));
  EXPECT_FALSE(Contains(ids, unrelated.id)) << "noise-level match kept";
  for (const auto& h : def.hits) EXPECT_GE(*h.similarity, embedder_.NoiseFloor());
  // An explicit floor overrides the embedder's.
  EXPECT_EQ(HitIds(Find(query, SearchMode::kVector, {}, -1.0)).size(), 3u);
  EXPECT_EQ(HitIds(Find(query, SearchMode::kVector, {}, 0.999)), (std::vector<int64_t>{exact.id}));
  // In hybrid mode a dropped vector match can still come from the keyword side.
  auto hyb = Find("spreadsheet " + query, SearchMode::kHybrid);
  for (const auto& h : hyb.hits) {
    if (h.memory.id == unrelated.id) {
      EXPECT_TRUE(h.keyword_rank.has_value());
    }
  }
}

// Two services on two connections to one file stand in for two processes:
// each one's index follows the other's writes through memory_changes.
TEST_P(MemoryServiceTest, WritesByAnotherProcessShowUpInSearch) {
  auto db_b = Database::Open(path_, {});
  ASSERT_TRUE(db_b.ok()) << db_b.status().ToString();
  HashEmbedder emb_b;
  MemoryService b(**db_b, emb_b);
  ASSERT_TRUE(b.LoadIndex(GetParam()).ok());

  // Insert in A, vector search in B.
  Memory m = Put(In("cross process note about flamingos"));
  auto found = FindWith(b, "cross process note about flamingos", SearchMode::kVector);
  EXPECT_EQ(HitIds(found), (std::vector<int64_t>{m.id})) << "B did not replay A's insert";

  // Update in A: B's vector follows the new content.
  MemoryPatch p;
  p.content = "cross process note about pelicans";
  ASSERT_TRUE(svc_->Update(m.id, p).ok());
  auto upd = FindWith(b, "cross process note about pelicans", SearchMode::kVector);
  ASSERT_FALSE(upd.hits.empty());
  EXPECT_EQ(upd.hits[0].memory.id, m.id);
  EXPECT_NEAR(*upd.hits[0].similarity, 1.0, 1e-5) << "B kept the old vector";

  // Forget in A: gone from B's default search.
  ASSERT_TRUE(svc_->Forget(m.id).ok());
  EXPECT_TRUE(FindWith(b, "cross process note about pelicans", SearchMode::kVector).hits.empty());
  MemoryPatch revive;
  revive.archived = false;
  ASSERT_TRUE(svc_->Update(m.id, revive).ok());
  EXPECT_EQ(HitIds(FindWith(b, "cross process note about pelicans", SearchMode::kVector)),
            (std::vector<int64_t>{m.id}));

  // Supersede in A, then delete the newest: the older snapshot is current again in B.
  MemoryInput s1 = In("void Scheduler() { round_robin(); }", "code");
  s1.file_path = "sched.cpp";
  MemoryInput s2 = In("void Scheduler() { fair_share(); }", "code");
  s2.file_path = "sched.cpp";
  Memory v1 = Put(s1);
  Memory v2 = Put(s2);
  auto sup = HitIds(FindWith(b, "void Scheduler() { round_robin(); }", SearchMode::kVector));
  EXPECT_FALSE(Contains(sup, v1.id)) << "B did not see the supersede";
  EXPECT_TRUE(Contains(sup, v2.id));
  ASSERT_TRUE(svc_->Delete(v2.id).ok());
  auto after = HitIds(FindWith(b, "void Scheduler() { round_robin(); }", SearchMode::kVector));
  EXPECT_FALSE(Contains(after, v2.id)) << "B did not replay the delete";
  EXPECT_TRUE(Contains(after, v1.id))
      << "B did not see the older snapshot become current (ON DELETE SET NULL)";

  // Writes in B show up in A too.
  Memory from_b = PutWith(b, In("herons written by process B"));
  auto in_a = Find("herons written by process B", SearchMode::kVector);
  ASSERT_FALSE(in_a.hits.empty()) << "A did not replay B's insert";
  EXPECT_EQ(in_a.hits[0].memory.id, from_b.id);
  EXPECT_NEAR(*in_a.hits[0].similarity, 1.0, 1e-5);
  // And deletes in B.
  ASSERT_TRUE(b.Delete(from_b.id).ok());
  EXPECT_FALSE(
      Contains(HitIds(Find("herons written by process B", SearchMode::kVector)), from_b.id))
      << "A did not replay B's delete";
  EXPECT_EQ(svc_->Stats(std::nullopt)->indexed, b.Stats(std::nullopt)->indexed);
}

TEST_P(MemoryServiceTest, ReembedInAnotherProcessReachesThisIndex) {
  SwitchableEmbedder down;
  down.down = true;
  MemoryService writer(*db_, down);
  Memory m = PutWith(writer, In("embedded later by someone else: ospreys"));
  EXPECT_TRUE(Find("embedded later by someone else: ospreys", SearchMode::kVector).hits.empty());
  // Another process (same model) fills in the vector.
  auto db_b = Database::Open(path_, {});
  ASSERT_TRUE(db_b.ok());
  HashEmbedder emb_b;
  MemoryService b(**db_b, emb_b);
  ASSERT_TRUE(b.LoadIndex(GetParam()).ok());
  ASSERT_EQ(*b.Reembed(), 1);
  EXPECT_EQ(HitIds(Find("embedded later by someone else: ospreys", SearchMode::kVector)),
            (std::vector<int64_t>{m.id}));
}

INSTANTIATE_TEST_SUITE_P(KeywordSources, MemoryServiceTest,
                         ::testing::Values(MemoryService::Indexes::kVectors,
                                           MemoryService::Indexes::kVectorsAndKeywords),
                         [](const ::testing::TestParamInfo<MemoryService::Indexes>& info) {
                           return info.param == MemoryService::Indexes::kVectors ? "Fts5"
                                                                                 : "KeywordIndex";
                         });

}  // namespace
}  // namespace ds::memory
