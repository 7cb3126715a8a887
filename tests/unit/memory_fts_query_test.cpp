// BuildFtsQuery: every user text becomes a valid FTS5 MATCH expression,
// checked against a real FTS5 table (not by inspecting the string).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>
#include <string>
#include <vector>

#include "memory/fts_query.h"

namespace ds::memory {
namespace {

class MemoryFtsQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    Exec("CREATE VIRTUAL TABLE t USING fts5(content, tokenize='unicode61 remove_diacritics 2')");
    // The tokenizer memory_fts uses in production (porter stemming on top).
    Exec(
        "CREATE VIRTUAL TABLE tp USING fts5(content, tokenize='porter unicode61 remove_diacritics "
        "2')");
    const std::vector<std::string> rows = {
        "the quick brown fox jumps over the lazy dog",                         // 1
        "parseHttpRequest reads ../../etc/passwd when the path is unchecked",  // 2
        "日本語 テキスト 数据库连接失败",                                      // 3
        "naïve café résumé",                                                   // 4
        "std::vector<int> push_back and NEAR OR AND NOT keywords",             // 5
        "error: database is locked (SQLITE_BUSY) after 5000 ms",               // 6
    };
    for (const auto& r : rows) {
      sqlite3_stmt* st = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db_, "INSERT INTO t(content) VALUES(?)", -1, &st, nullptr),
                SQLITE_OK);
      sqlite3_bind_text(st, 1, r.data(), static_cast<int>(r.size()), SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_finalize(st);
    }
    Exec("INSERT INTO tp(rowid, content) SELECT rowid, content FROM t");
  }
  void TearDown() override { sqlite3_close(db_); }

  void Exec(const char* sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  }

  // Runs the MATCH; returns the rowids, or sets *error on any SQLite error.
  std::set<int64_t> Match(const std::string& query, std::string* error,
                          const std::string& table = "t") {
    std::set<int64_t> out;
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT rowid FROM " + table + " WHERE " + table + " MATCH ?";
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr);
    if (rc != SQLITE_OK) {
      *error = sqlite3_errmsg(db_);
      return out;
    }
    sqlite3_bind_text(st, 1, query.data(), static_cast<int>(query.size()), SQLITE_TRANSIENT);
    for (;;) {
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        out.insert(sqlite3_column_int64(st, 0));
        continue;
      }
      if (rc != SQLITE_DONE) *error = std::to_string(rc) + ": " + sqlite3_errmsg(db_);
      break;
    }
    sqlite3_finalize(st);
    return out;
  }

  std::set<int64_t> Search(std::string_view text) {
    std::string q = BuildFtsQuery(text);
    std::string error;
    auto rows = Match(q, &error);
    EXPECT_TRUE(error.empty()) << "text: " << text << "\nquery: " << q << "\nerror: " << error;
    return rows;
  }

  sqlite3* db_ = nullptr;
};

// The built query is "t1" OR "t2" ... with no quote inside a term.
bool WellFormed(const std::string& q) {
  if (q.empty()) return true;
  size_t i = 0;
  for (;;) {
    if (i >= q.size() || q[i] != '"') return false;
    size_t close = q.find('"', i + 1);
    if (close == std::string::npos || close == i + 1) return false;
    i = close + 1;
    if (i == q.size()) return true;
    if (q.compare(i, 4, " OR ") != 0) return false;
    i += 4;
  }
}

std::vector<std::string> NastyStrings() {
  std::vector<std::string> v = {
      "\"",
      "'",
      "\"\"\"\"",
      "it's a \"quoted\" string",
      "\"unterminated",
      "\"a\" \"b\"",
      "-",
      "--verbose -rf",
      "foo -bar",
      ".",
      "...",
      "v1.2.3",
      "?",
      "what is this?",
      "*",
      "foo*",
      ":",
      "content:foo",
      "col1 : col2",
      "^start",
      "(",
      ")",
      "((a OR b)",
      "{}",
      "{content}: fox",
      "AND",
      "OR",
      "NOT",
      "NEAR",
      "NEAR(a b, 3)",
      "NEAR/3",
      "a AND b OR NOT c",
      "AND OR NOT NEAR",
      "+ - * /",
      "../../etc/passwd",
      "C:\\Windows\\System32\\drivers\\etc\\hosts",
      "/usr/local/bin/devstream --db=/tmp/x.db",
      "std::vector<int> v{1, 2}; v.push_back(3);",
      "template <typename T> auto f(T&& t) -> decltype(t) { return t; }",
      "if (a && b || !c) { x->y = *p; }",
      "'; DROP TABLE t; --",
      "\" OR 1=1 --",
      "1' OR '1'='1",
      "UNION SELECT * FROM sqlite_master",
      "%_% LIKE '%x%'",
      "🔥🚀 fix 🐛",
      "🔥",
      "数据库连接失败",
      "naïve café résumé",
      "שלום עולם",
      "ＡＢＣ full-width",
      "e\xcc\x81 combining",
      "a\xe2\x80\x8d"
      "b zero width joiner",
      "line\xe2\x80\xa8separator",
      std::string("a\0b\0c", 5),
      std::string("\0", 1),
      std::string("\0\0\"\0", 4),
      "\t\n\r",
      "a\tb\nc",
      "\xff\xfe\xc3",
      "ok \xc3\x28 broken utf8",
      std::string(10000, 'a'),
      std::string(10000, '"'),
      "a" + std::string(300, 'x') + " " + std::string(200, '-'),
      "!@#$%^&*()_+-=[]{}|;':\",./<>?~`",
      "___",
      "_leading_underscore",
  };
  // A term longer than the 100-byte cap whose cut falls inside a UTF-8 sequence.
  {
    std::string s = "a";
    for (int i = 0; i < 200; ++i) s += "é";
    v.push_back(s);
  }
  // 10k characters of alternating syntax.
  {
    std::string s;
    while (s.size() < 10000) s += "\"-(*:^. ";
    v.push_back(s);
  }
  // Many distinct terms (more than the 64-term cap).
  {
    std::string s;
    for (int i = 0; i < 2000; ++i) s += "w" + std::to_string(i) + (i % 3 ? " OR " : " NEAR(");
    v.push_back(s);
  }
  // Every byte value once.
  {
    std::string s;
    for (int c = 0; c < 256; ++c) s += static_cast<char>(c);
    v.push_back(s);
  }
  return v;
}

TEST_F(MemoryFtsQueryTest, NastyStringsAreAcceptedByRealFts5) {
  auto cases = NastyStrings();
  ASSERT_GE(cases.size(), 40u);
  int executed = 0;
  for (const auto& text : cases) {
    std::string q = BuildFtsQuery(text);
    EXPECT_TRUE(WellFormed(q)) << "text: " << text << "\nquery: " << q;
    EXPECT_LE(QueryTerms(text).size(), 64u);
    if (q.empty()) continue;
    ++executed;
    for (const char* table : {"t", "tp"}) {
      std::string error;
      Match(q, &error, table);
      EXPECT_TRUE(error.empty()) << table << ": text (" << text.size()
                                 << " bytes): " << text.substr(0, 80)
                                 << "\nquery: " << q.substr(0, 200) << "\nerror: " << error;
    }
  }
  EXPECT_GE(executed, 30) << "most cases should produce a query";
}

TEST_F(MemoryFtsQueryTest, TermSearchFindsTheRowContainingIt) {
  EXPECT_EQ(Search("Fox!"), (std::set<int64_t>{1}));
  EXPECT_EQ(Search("LAZY-dog?"), (std::set<int64_t>{1}));
  EXPECT_EQ(Search("../../etc/passwd"), (std::set<int64_t>{2}));
  EXPECT_EQ(Search("parseHttpRequest"), (std::set<int64_t>{2}));
  EXPECT_EQ(Search("日本語"), (std::set<int64_t>{3}));
  EXPECT_EQ(Search("cafe"), (std::set<int64_t>{4})) << "remove_diacritics";
  EXPECT_EQ(Search("café"), (std::set<int64_t>{4}));
  EXPECT_EQ(Search("NEAR"), (std::set<int64_t>{5})) << "keywords are plain words";
  EXPECT_EQ(Search("std::vector"), (std::set<int64_t>{5}));
  EXPECT_EQ(Search("database locked (SQLITE_BUSY)"), (std::set<int64_t>{6}));
  // OR semantics: any term matches.
  EXPECT_EQ(Search("fox café"), (std::set<int64_t>{1, 4}));
  EXPECT_TRUE(Search("zebra unicorn").empty());
  EXPECT_TRUE(Search("'; DROP TABLE t; --").empty());
  // The table is still there after the injection attempt.
  EXPECT_EQ(Search("quick"), (std::set<int64_t>{1}));
  // With porter stemming (production), inflections meet.
  std::string error;
  EXPECT_EQ(Match(BuildFtsQuery("jumping foxes"), &error, "tp"), (std::set<int64_t>{1}));
  EXPECT_TRUE(error.empty()) << error;
}

TEST(MemoryFtsQueryTermsTest, TermsAreLowerCasedDedupedAndCapped) {
  EXPECT_EQ(QueryTerms("Hello, hello HELLO world"), (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(QueryTerms("a.b-c/d"), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(QueryTerms("").empty());
  EXPECT_TRUE(QueryTerms("!!! ... ---").empty());
  EXPECT_EQ(BuildFtsQuery(""), "");
  EXPECT_EQ(BuildFtsQuery("?!"), "");
  EXPECT_EQ(BuildFtsQuery("Fix the bug"), "\"fix\" OR \"the\" OR \"bug\"");
  EXPECT_EQ(QueryTerms("one two three four", 2), (std::vector<std::string>{"one", "two"}));
  std::string many;
  for (int i = 0; i < 100; ++i) many += "t" + std::to_string(i) + " ";
  EXPECT_EQ(QueryTerms(many).size(), 64u);
  EXPECT_EQ(QueryTerms(std::string(500, 'z'))[0].size(), 100u) << "long terms are capped";
  // Non-ASCII bytes stay inside terms.
  EXPECT_EQ(QueryTerms("naïve"), (std::vector<std::string>{"naïve"}));
}

}  // namespace
}  // namespace ds::memory
