// End-to-end tests of the memory REST API (memories, batch, search, context)
// against the real binary and a real SQLite file.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace ds::itest {
namespace {

class MemoryApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = TempDir() + "/memory.db";
    server_ = std::make_unique<ServerProcess>(db_);
    ASSERT_TRUE(server_->Start()) << "server did not start";
  }
  void TearDown() override { EXPECT_EQ(server_->Stop(), 0) << "graceful shutdown exit code"; }

  HttpResult Post(const std::string& path, const std::string& body) {
    return Http(server_->port(), "POST", path, body);
  }
  HttpResult Get(const std::string& path) { return Http(server_->port(), "GET", path); }
  HttpResult Patch(const std::string& path, const std::string& body) {
    return Http(server_->port(), "PATCH", path, body);
  }
  HttpResult Delete(const std::string& path) { return Http(server_->port(), "DELETE", path); }

  // Stores a memory and returns its id (0 on failure).
  int64_t Store(const std::string& body, int expected = 201) {
    auto r = Post("/api/v1/memories", body);
    EXPECT_EQ(r.status, expected) << body << " -> " << r.body;
    auto v = r.Json();
    if (!v.is_object() || !v.as_object().contains("id")) return 0;
    return v.at("id").as_int64();
  }
  static std::string Str(const std::string& s) { return json::serialize(json::value(s)); }
  static std::string MemoryBody(const std::string& content, const std::string& type = "learning",
                                const std::string& extra = "") {
    return "{\"content\":" + Str(content) + ",\"content_type\":\"" + type + "\"" + extra + "}";
  }
  std::string MemPath(int64_t id) { return "/api/v1/memories/" + std::to_string(id); }

  std::string db_;
  std::unique_ptr<ServerProcess> server_;
};

std::vector<int64_t> Ids(const json::value& list, const char* key = "items") {
  std::vector<int64_t> out;
  for (const auto& item : list.at(key).as_array()) out.push_back(item.at("id").as_int64());
  return out;
}

TEST_F(MemoryApiTest, StoreGetListPatchForgetDelete) {
  auto created =
      Post("/api/v1/memories",
           MemoryBody("Use WAL mode so readers never block the writer", "decision",
                      ",\"keywords\":[\"sqlite\",\"wal\"],\"content_format\":\"markdown\","
                      "\"relevance_score\":0.9"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Header("content-type"), "application/json");
  auto m = created.Json();
  int64_t id = m.at("id").as_int64();
  EXPECT_GT(id, 0);
  EXPECT_EQ(m.at("content_type").as_string(), "decision");
  EXPECT_EQ(m.at("content_format").as_string(), "markdown");
  EXPECT_EQ(m.at("source").as_string(), "api");
  EXPECT_EQ(m.at("keywords").as_array().size(), 2u);
  EXPECT_FALSE(m.at("deduplicated").as_bool());
  EXPECT_EQ(m.at("redactions").as_int64(), 0);
  EXPECT_TRUE(m.at("superseded").as_array().empty());
  EXPECT_TRUE(m.at("superseded_by").is_null());
  EXPECT_FALSE(m.at("archived").as_bool());

  // Same content again: 200 with the existing id.
  auto dup = Post("/api/v1/memories",
                  MemoryBody("Use WAL mode so readers never block the writer", "decision"));
  ASSERT_EQ(dup.status, 200) << dup.body;
  EXPECT_TRUE(dup.Json().at("deduplicated").as_bool());
  EXPECT_EQ(dup.Json().at("id").as_int64(), id);

  auto got = Get(MemPath(id));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json().at("content").as_string(), "Use WAL mode so readers never block the writer");
  EXPECT_EQ(got.Json().at("relevance_score").as_double(), 0.9);

  std::vector<int64_t> ids = {id};
  for (int i = 0; i < 5; ++i) {
    ids.push_back(
        Store(MemoryBody("paginated note " + std::to_string(i), i % 2 ? "error" : "learning")));
  }
  // Cursor pagination, newest first.
  std::vector<int64_t> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = Get("/api/v1/memories?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(page.status, 200) << page.body;
    auto pj = page.Json();
    for (int64_t x : Ids(pj)) seen.push_back(x);
    auto next = pj.at("next_cursor");
    cursor = next.is_string() ? std::string(next.as_string()) : "";
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<int64_t>(ids.rbegin(), ids.rend())));
  EXPECT_EQ(Ids(Get("/api/v1/memories?content_type=error").Json()),
            (std::vector<int64_t>{ids[4], ids[2]}));

  auto patched =
      Patch(MemPath(id), R"({"content":"Use WAL mode; checkpoint on shutdown","pinned":true})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_TRUE(patched.Json().at("pinned").as_bool());
  EXPECT_EQ(Get(MemPath(id)).Json().at("content").as_string(),
            "Use WAL mode; checkpoint on shutdown");
  auto found = Post("/api/v1/search", R"({"query":"checkpoint","mode":"keyword"})");
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(Ids(found.Json(), "results"), (std::vector<int64_t>{id}));

  auto forgot = Post(MemPath(id) + "/forget", "");
  ASSERT_EQ(forgot.status, 200) << forgot.body;
  EXPECT_TRUE(forgot.Json().at("archived").as_bool());
  auto listed = Ids(Get("/api/v1/memories?limit=100").Json());
  EXPECT_EQ(std::count(listed.begin(), listed.end(), id), 0);
  listed = Ids(Get("/api/v1/memories?limit=100&include_archived=true").Json());
  EXPECT_EQ(std::count(listed.begin(), listed.end(), id), 1);
  EXPECT_TRUE(Ids(Post("/api/v1/search", R"({"query":"checkpoint"})").Json(), "results").empty());

  auto stats = Get("/api/v1/memories/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  EXPECT_EQ(stats.Json().at("memories").as_int64(), 6);
  EXPECT_EQ(stats.Json().at("archived").as_int64(), 1);
  EXPECT_EQ(stats.Json().at("dim").as_int64(), 384);
  EXPECT_EQ(stats.Json().at("vectors").as_int64(), 6);

  auto del = Delete(MemPath(id));
  EXPECT_EQ(del.status, 204) << del.body;
  EXPECT_EQ(Get(MemPath(id)).status, 404);
  EXPECT_EQ(Delete(MemPath(id)).status, 404);
  EXPECT_EQ(Post(MemPath(id) + "/forget", "").status, 404);
  EXPECT_EQ(Get("/api/v1/memories/stats").Json().at("memories").as_int64(), 5);
}

TEST_F(MemoryApiTest, ProjectsScopeMemories) {
  int64_t a = Store(MemoryBody("scoped note about kafka", "learning", ",\"project\":\"alpha\""));
  auto b = Http(server_->port(), "POST", "/api/v1/memories", MemoryBody("scoped note about kafka"),
                {{"X-DevStream-Project", "beta"}});
  ASSERT_EQ(b.status, 201) << b.body;
  EXPECT_NE(b.Json().at("id").as_int64(), a);
  EXPECT_EQ(Ids(Get("/api/v1/memories?project=alpha").Json()), (std::vector<int64_t>{a}));
  auto s = Post("/api/v1/search?project=beta", R"({"query":"kafka"})");
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(Ids(s.Json(), "results"), (std::vector<int64_t>{b.Json().at("id").as_int64()}));
  EXPECT_EQ(Post("/api/v1/search", R"({"query":"kafka","project":"nope"})").status, 404);
}

TEST_F(MemoryApiTest, SecretsAreRedactedOnStore) {
  auto r = Post("/api/v1/memories",
                MemoryBody("deploy key AKIAIOSFODNN7EXAMPLE and password=hunter2hunter2"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json().at("redactions").as_int64(), 2);
  EXPECT_EQ(r.body.find("hunter2hunter2"), std::string::npos);
  EXPECT_EQ(DumpDatabase(db_).find("hunter2hunter2"), std::string::npos);
  EXPECT_EQ(DumpDatabase(db_).find("AKIAIOSFODNN7EXAMPLE"), std::string::npos);
}

TEST_F(MemoryApiTest, BatchStoresAllOrNothing) {
  auto ok = Post("/api/v1/memories/batch",
                 R"({"memories":[{"content":"batch one","content_type":"learning"},
                                 {"content":"batch two","content_type":"error","keywords":["x"]},
                                 {"content":"batch one","content_type":"learning"}]})");
  ASSERT_EQ(ok.status, 201) << ok.body;
  auto j = ok.Json();
  ASSERT_EQ(j.at("items").as_array().size(), 3u);
  EXPECT_EQ(j.at("created").as_int64(), 2);
  EXPECT_EQ(j.at("deduplicated").as_int64(), 1);
  auto items = j.at("items").as_array();
  EXPECT_EQ(items[0].at("id").as_int64(), items[2].at("id").as_int64());
  EXPECT_TRUE(items[2].at("deduplicated").as_bool());
  EXPECT_EQ(Get(MemPath(items[1].at("id").as_int64())).Json().at("content").as_string(),
            "batch two");

  std::string before = DumpDatabase(db_);
  auto bad = Post("/api/v1/memories/batch",
                  R"({"memories":[{"content":"batch three","content_type":"learning"},
                                  {"content":"batch four","content_type":"learning",
                                   "plan_id":"pln_00000000000000000000000000"}]})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(bad.Header("content-type"), "application/problem+json");
  EXPECT_EQ(DumpDatabase(db_), before) << "a failed batch stored something";
  auto search = Post("/api/v1/search", R"({"query":"batch three","mode":"keyword"})");
  ASSERT_EQ(search.status, 200);
  auto search_json = search.Json();
  for (const auto& h : search_json.at("results").as_array()) {
    EXPECT_NE(h.at("content").as_string(), "batch three");
  }
}

TEST_F(MemoryApiTest, SearchResultShape) {
  int64_t both = Store(MemoryBody("authentication middleware validates the session cookie", "code",
                                  ",\"content_format\":\"python\",\"file_path\":\"app/auth.py\""));
  int64_t other = Store(MemoryBody("authenticate users against the LDAP directory", "decision"));
  Store(MemoryBody("cache invalidation with write-through", "learning"));

  auto r = Post("/api/v1/search", R"({"query":"authentication session","limit":5})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  auto j = r.Json();
  ASSERT_TRUE(j.at("results").is_array());
  EXPECT_FALSE(j.at("degraded").as_bool());
  EXPECT_TRUE(j.at("took_ms").is_number());
  EXPECT_GE(j.at("took_ms").to_number<double>(), 0.0);
  auto results = j.at("results").as_array();
  ASSERT_FALSE(results.empty());
  EXPECT_LE(results.size(), 5u);
  for (const auto& h : results) {
    for (const char* key : {"id", "content", "content_type", "score", "keyword_rank", "vector_rank",
                            "similarity", "bm25", "created_at", "project_id"}) {
      EXPECT_TRUE(h.as_object().contains(key)) << "missing " << key << " in " << json::serialize(h);
    }
  }
  const auto& top = results[0];
  EXPECT_EQ(top.at("id").as_int64(), both);
  EXPECT_TRUE(top.at("keyword_rank").is_int64()) << json::serialize(top);
  EXPECT_TRUE(top.at("vector_rank").is_int64()) << json::serialize(top);
  EXPECT_TRUE(top.at("similarity").is_number());
  EXPECT_TRUE(top.at("bm25").is_number());
  EXPECT_GT(top.at("score").to_number<double>(), 0.0);
  for (size_t i = 1; i < results.size(); ++i) {
    EXPECT_GE(results[i - 1].at("score").to_number<double>(),
              results[i].at("score").to_number<double>());
  }

  auto kw = Post("/api/v1/search", R"({"query":"middleware","mode":"keyword"})").Json();
  ASSERT_EQ(kw.at("results").as_array().size(), 1u);
  EXPECT_TRUE(kw.at("results").as_array()[0].at("vector_rank").is_null());
  EXPECT_TRUE(kw.at("results").as_array()[0].at("similarity").is_null());
  EXPECT_TRUE(kw.at("results").as_array()[0].at("keyword_rank").is_int64());

  auto vec =
      Post("/api/v1/search", R"({"query":"authentication","mode":"vector","limit":2})").Json();
  auto vres = vec.at("results").as_array();
  ASSERT_EQ(vres.size(), 2u);
  std::set<int64_t> vids = {vres[0].at("id").as_int64(), vres[1].at("id").as_int64()};
  EXPECT_EQ(vids, (std::set<int64_t>{both, other}));
  for (const auto& h : vres) {
    EXPECT_TRUE(h.at("keyword_rank").is_null());
    EXPECT_TRUE(h.at("bm25").is_null());
    EXPECT_TRUE(h.at("similarity").is_number());
  }

  // min_similarity -1 keeps every indexed memory as a vector candidate.
  auto all =
      Post("/api/v1/search", R"({"query":"authentication","mode":"vector","min_similarity":-1})");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.Json().at("results").as_array().size(), 3u);
  auto strict =
      Post("/api/v1/search", R"({"query":"authentication","mode":"vector","min_similarity":0.99})");
  ASSERT_EQ(strict.status, 200) << strict.body;
  EXPECT_TRUE(strict.Json().at("results").as_array().empty());

  auto typed = Post("/api/v1/search", R"({"query":"authentication","content_types":["decision"]})");
  ASSERT_EQ(typed.status, 200) << typed.body;
  EXPECT_EQ(Ids(typed.Json(), "results"), (std::vector<int64_t>{other}));
  // Query text that is FTS5 syntax is fine.
  auto nasty = Post("/api/v1/search", R"({"query":"\"auth* NEAR(x -y) ../../etc/passwd '; --"})");
  EXPECT_EQ(nasty.status, 200) << nasty.body;
}

TEST_F(MemoryApiTest, ContextShape) {
  for (int i = 0; i < 6; ++i) {
    Store(MemoryBody("retry with exponential backoff, attempt " + std::to_string(i) + " " +
                         std::string(300, 'b'),
                     i % 2 ? "code" : "learning", i % 2 ? ",\"content_format\":\"go\"" : ""));
  }
  auto r = Post("/api/v1/context", R"({"query":"retry backoff","token_budget":200})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.Json();
  ASSERT_TRUE(j.at("context").is_string());
  ASSERT_TRUE(j.at("memory_ids").is_array());
  EXPECT_TRUE(j.at("tokens").is_int64());
  EXPECT_TRUE(j.at("truncated").is_bool());
  EXPECT_FALSE(j.at("degraded").as_bool());
  std::string ctx(j.at("context").as_string());
  EXPECT_LE(j.at("tokens").as_int64(), 200);
  EXPECT_LE((ctx.size() + 3) / 4, 200u);
  EXPECT_TRUE(j.at("truncated").as_bool());
  ASSERT_FALSE(j.at("memory_ids").as_array().empty());
  for (const auto& id : j.at("memory_ids").as_array()) {
    EXPECT_NE(ctx.find("## Memory " + std::to_string(id.as_int64()) + " "), std::string::npos)
        << ctx;
  }
  auto diverse =
      Post("/api/v1/context", R"({"query":"retry backoff","token_budget":5000,"diversity":true})");
  ASSERT_EQ(diverse.status, 200) << diverse.body;
  EXPECT_EQ(diverse.Json().at("memory_ids").as_array().size(), 6u);
  EXPECT_FALSE(diverse.Json().at("truncated").as_bool());
  EXPECT_NE(std::string(diverse.Json().at("context").as_string()).find("```go\n"),
            std::string::npos);
}

struct BadRequest {
  std::string name, method, path, body;
  int expected;
  bool json_type = true;
};

TEST_F(MemoryApiTest, BadRequestsGetProblemJsonAndLeaveDataUnchanged) {
  int64_t id = Store(MemoryBody("existing memory one", "decision", ",\"file_path\":\"a.txt\""));
  int64_t id2 = Store(MemoryBody("existing memory two"));
  int64_t id3 = Store(MemoryBody("existing memory three"));
  ASSERT_GT(id, 0);
  ASSERT_GT(id2, 0);
  ASSERT_GT(id3, 0);
  const std::string m = "/api/v1/memories";
  const std::string one = MemPath(id);
  std::string batch_1001 = "{\"memories\":[";
  for (int i = 0; i < 1001; ++i) {
    batch_1001 += (i ? "," : "") + MemoryBody("bulk " + std::to_string(i));
  }
  batch_1001 += "]}";
  std::vector<BadRequest> cases = {
      {"empty content", "POST", m, R"({"content":"","content_type":"learning"})", 422},
      {"blank content", "POST", m, R"({"content":"   \n\t  ","content_type":"learning"})", 422},
      {"missing content", "POST", m, R"({"content_type":"learning"})", 422},
      {"missing content_type", "POST", m, R"({"content":"x"})", 422},
      {"unknown content_type", "POST", m, R"({"content":"x","content_type":"poem"})", 422},
      {"content over 500000 chars", "POST", m, MemoryBody(std::string(500001, 'x')), 422},
      {"invalid utf8", "POST", m, "{\"content\":\"\xff\xfe\xfd\",\"content_type\":\"learning\"}",
       400},
      {"malformed json", "POST", m, R"({"content":)", 400},
      {"not json content type", "POST", m, MemoryBody("x"), 400, false},
      {"empty body", "POST", m, "", 400},
      {"array body", "POST", m, "[]", 422},
      {"unknown field", "POST", m, R"({"content":"x","content_type":"learning","colour":"red"})",
       422},
      {"content wrong type", "POST", m, R"({"content":42,"content_type":"learning"})", 422},
      {"content_type wrong type", "POST", m, R"({"content":"x","content_type":["code"]})", 422},
      {"keywords not array", "POST", m, MemoryBody("x", "learning", R"(,"keywords":"a,b")"), 422},
      {"keywords items not strings", "POST", m, MemoryBody("x", "learning", R"(,"keywords":[1])"),
       422},
      {"pinned not bool", "POST", m, MemoryBody("x", "learning", R"(,"pinned":"yes")"), 422},
      {"relevance out of range", "POST", m, MemoryBody("x", "learning", R"(,"relevance_score":2)"),
       422},
      {"relevance not number", "POST", m, MemoryBody("x", "learning", R"(,"relevance_score":"hi")"),
       422},
      {"project not string", "POST", m, MemoryBody("x", "learning", R"(,"project":5)"), 422},
      {"plan_id not an id", "POST", m, MemoryBody("x", "learning", R"(,"plan_id":"../../etc")"),
       422},
      {"plan_id unknown", "POST", m,
       MemoryBody("x", "learning", R"(,"plan_id":"pln_00000000000000000000000000")"), 422},
      {"bad content_format", "POST", m,
       MemoryBody("x", "learning", R"(,"content_format":"py thon")"), 422},
      {"bad source", "POST", m, MemoryBody("x", "learning", R"(,"source":"web")"), 422},
      {"unknown query param", "POST", m + "?colour=red", MemoryBody("x"), 422},
      {"batch empty", "POST", m + "/batch", R"({"memories":[]})", 422},
      {"batch not array", "POST", m + "/batch", R"({"memories":{}})", 422},
      {"batch item not object", "POST", m + "/batch", R"({"memories":["x"]})", 422},
      {"batch item invalid", "POST", m + "/batch",
       R"({"memories":[{"content":"ok","content_type":"learning"},{"content":"","content_type":"learning"}]})",
       422},
      {"batch missing memories", "POST", m + "/batch", R"({})", 422},
      {"batch over 1000", "POST", m + "/batch", batch_1001, 422},
      {"search limit 0", "POST", "/api/v1/search", R"({"query":"x","limit":0})", 422},
      {"search limit 101", "POST", "/api/v1/search", R"({"query":"x","limit":101})", 422},
      {"search limit string", "POST", "/api/v1/search", R"({"query":"x","limit":"10"})", 422},
      {"search limit fraction", "POST", "/api/v1/search", R"({"query":"x","limit":2.5})", 422},
      {"search missing query", "POST", "/api/v1/search", R"({"limit":5})", 422},
      {"search empty query", "POST", "/api/v1/search", R"({"query":""})", 422},
      {"search query not string", "POST", "/api/v1/search", R"({"query":["x"]})", 422},
      {"search bad mode", "POST", "/api/v1/search", R"({"query":"x","mode":"fuzzy"})", 422},
      {"search cursor", "POST", "/api/v1/search", R"({"query":"x","cursor":"abc"})", 422},
      {"search weights not object", "POST", "/api/v1/search", R"({"query":"x","weights":1})", 422},
      {"search weights unknown key", "POST", "/api/v1/search",
       R"({"query":"x","weights":{"keyword":1,"semantic":2}})", 422},
      {"search weight out of range", "POST", "/api/v1/search",
       R"({"query":"x","weights":{"keyword":-1}})", 422},
      {"search unknown content type", "POST", "/api/v1/search",
       R"({"query":"x","content_types":["poem"]})", 422},
      {"search bad since", "POST", "/api/v1/search", R"({"query":"x","since":"yesterday"})", 422},
      {"search include_archived not bool", "POST", "/api/v1/search",
       R"({"query":"x","include_archived":1})", 422},
      {"search unknown field", "POST", "/api/v1/search", R"({"query":"x","top_k":3})", 422},
      {"search malformed", "POST", "/api/v1/search", R"({"query":"x")", 400},
      {"search min_similarity out of range", "POST", "/api/v1/search",
       R"({"query":"x","min_similarity":2})", 422},
      {"search min_similarity not number", "POST", "/api/v1/search",
       R"({"query":"x","min_similarity":"high"})", 422},
      {"context search-only field", "POST", "/api/v1/context", R"({"query":"x","mode":"vector"})",
       422},
      {"context budget 0", "POST", "/api/v1/context", R"({"query":"x","token_budget":0})", 422},
      {"context budget string", "POST", "/api/v1/context", R"({"query":"x","token_budget":"5"})",
       422},
      {"context unknown field", "POST", "/api/v1/context", R"({"query":"x","budget":5})", 422},
      {"context missing query", "POST", "/api/v1/context", R"({"token_budget":5})", 422},
      {"id not integer", "GET", m + "/abc", "", 404},
      {"id fraction", "GET", m + "/1.5", "", 404},
      {"id negative", "GET", m + "/-1", "", 404},
      {"id zero", "GET", m + "/0", "", 404},
      {"id overflow", "GET", m + "/99999999999999999999999", "", 404},
      {"id with suffix", "GET", m + "/" + std::to_string(id) + "abc", "", 404},
      {"id unknown", "GET", m + "/987654", "", 404},
      {"patch id not integer", "PATCH", m + "/abc", R"({"pinned":true})", 404},
      {"delete id not integer", "DELETE", m + "/abc", "", 404},
      {"forget id not integer", "POST", m + "/abc/forget", "", 404},
      {"forget unknown", "POST", m + "/987654/forget", "", 404},
      {"delete unknown", "DELETE", m + "/987654", "", 404},
      {"patch unknown", "PATCH", m + "/987654", R"({"pinned":true})", 404},
      {"patch unknown field", "PATCH", one, R"({"colour":"red"})", 422},
      {"patch empty content", "PATCH", one, R"({"content":""})", 422},
      {"patch blank content", "PATCH", one, R"({"content":"  \n "})", 422},
      {"patch archived not bool", "PATCH", one, R"({"archived":"yes"})", 422},
      {"patch bad content_type", "PATCH", one, R"({"content_type":"poem"})", 422},
      {"patch content over limit", "PATCH", one,
       "{\"content\":\"" + std::string(500001, 'y') + "\"}", 422},
      // Two memories without a file may not hold the same content (a file
      // snapshot may: the dedup key includes the file).
      {"patch duplicate content", "PATCH", MemPath(id3), R"({"content":"existing memory two"})",
       409},
      {"patch malformed", "PATCH", one, R"({"pinned":)", 400},
      {"list limit 0", "GET", m + "?limit=0", "", 422},
      {"list limit huge", "GET", m + "?limit=100000", "", 422},
      {"list limit text", "GET", m + "?limit=ten", "", 422},
      {"list forged cursor", "GET", m + "?cursor=AAAA", "", 422},
      {"list bad content_type", "GET", m + "?content_type=poem", "", 422},
      {"list unknown param", "GET", m + "?colour=red", "", 422},
      {"list unknown project", "GET", m + "?project=nope", "", 404},
      {"stats unknown param", "GET", m + "/stats?x=1", "", 422},
  };
  for (const auto& c : cases) {
    std::string before = DumpDatabase(db_);
    auto r = Http(server_->port(), c.method, c.path, c.body, {}, c.json_type);
    EXPECT_EQ(r.status, c.expected) << c.name << ": " << r.body.substr(0, 300);
    EXPECT_EQ(r.Header("content-type"), "application/problem+json") << c.name;
    auto problem = r.Json();
    if (problem.is_object()) {
      EXPECT_EQ(problem.at("status").as_int64(), c.expected) << c.name;
      EXPECT_FALSE(problem.at("detail").as_string().empty()) << c.name;
    } else {
      ADD_FAILURE() << c.name << ": body is not a problem object: " << r.body.substr(0, 300);
    }
    EXPECT_EQ(DumpDatabase(db_), before) << c.name << " changed stored data";
    EXPECT_EQ(Get("/health").status, 200) << "server unhealthy after " << c.name;
  }
  // The originals are intact.
  EXPECT_EQ(Get(one).Json().at("content").as_string(), "existing memory one");
  EXPECT_EQ(Get(MemPath(id2)).Json().at("content").as_string(), "existing memory two");
}

TEST_F(MemoryApiTest, TenMegabyteBodyIs413) {
  Store(MemoryBody("something stored before"));
  std::string big = MemoryBody(std::string(10u << 20, 'x'));
  std::string before = DumpDatabase(db_);
  auto r = Post("/api/v1/memories", big);
  EXPECT_EQ(r.status, 413) << r.body.substr(0, 300);
  EXPECT_EQ(r.Header("content-type"), "application/problem+json");
  EXPECT_EQ(DumpDatabase(db_), before);
  EXPECT_EQ(Get("/health").status, 200);
}

TEST_F(MemoryApiTest, ContentLimitCountsCharactersNotBytes) {
  // 500,000 two-byte characters: 1,000,000 bytes, under the 1 MiB body limit
  // and exactly at the 500,000-character content limit.
  std::string content;
  content.reserve(1000000);
  for (int i = 0; i < 500000; ++i) content += "\xc3\xa9";
  auto r = Post("/api/v1/memories", MemoryBody(content));
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  int64_t id = r.Json().at("id").as_int64();
  EXPECT_EQ(Get(MemPath(id)).Json().at("content").as_string().size(), 1000000u);
  EXPECT_EQ(Get("/health").status, 200);
}

}  // namespace
}  // namespace ds::itest
