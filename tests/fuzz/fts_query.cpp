// Fuzz target: the FTS5 query builder (memory/fts_query.h). The first byte
// sets max_terms (0..31), the rest is the user's text. Invariants: at most
// max_terms terms, none empty, none repeated; the query is empty exactly
// when there are no terms; BuildFtsQuery equals JoinFtsTerms(QueryTerms);
// and the query it builds — whole and per term — is accepted by a real
// FTS5 MATCH on an in-memory table with memory_fts's tokenizer: a query we
// build never raises an FTS5 syntax error.
#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_world.h"
#include "memory/fts_query.h"

namespace {

// One in-memory database for the process, with a few rows to match.
sqlite3* Db() {
  static sqlite3* db = [] {
    sqlite3* d = nullptr;
    if (sqlite3_open(":memory:", &d) != SQLITE_OK) ds::fuzz::Fail("sqlite3_open");
    const char* setup =
        "CREATE VIRTUAL TABLE t USING fts5(content, keywords,"
        " tokenize='porter unicode61 remove_diacritics 2');"
        "INSERT INTO t VALUES('the parser handles src/memory/fts_query.cpp', 'fts query');"
        "INSERT INTO t VALUES('Straße café naïve 日本語 テスト', 'unicode');"
        "INSERT INTO t VALUES('NEAR AND OR NOT \"quoted\" (paren) col:umn * ^start', 'syntax');";
    char* err = nullptr;
    if (sqlite3_exec(d, setup, nullptr, nullptr, &err) != SQLITE_OK) {
      ds::fuzz::Fail(std::string("fts5 setup: ") + (err ? err : "?"));
    }
    return d;
  }();
  return db;
}

void MustMatch(const std::string& query, std::string_view text) {
  sqlite3_stmt* stmt = nullptr;
  const char* sql = "SELECT rowid, bm25(t) FROM t WHERE t MATCH ?1 ORDER BY bm25(t) LIMIT 5";
  if (sqlite3_prepare_v2(Db(), sql, -1, &stmt, nullptr) != SQLITE_OK) ds::fuzz::Fail("prepare");
  sqlite3_bind_text(stmt, 1, query.data(), static_cast<int>(query.size()), SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  std::string err = sqlite3_errmsg(Db());
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    ds::fuzz::Fail("FTS5 rejected the query " + query + " built from \"" + std::string(text) +
                   "\": " + err);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t max_terms = data[0] % 32;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<std::string> terms = ds::memory::QueryTerms(text, max_terms);
  if (terms.size() > max_terms) ds::fuzz::Fail("more terms than max_terms");
  std::set<std::string> seen;
  for (const auto& t : terms) {
    if (t.empty()) ds::fuzz::Fail("empty term");
    if (!seen.insert(t).second) ds::fuzz::Fail("repeated term " + t);
  }
  std::string query = ds::memory::BuildFtsQuery(text, max_terms);
  if (query != ds::memory::JoinFtsTerms(terms)) {
    ds::fuzz::Fail("BuildFtsQuery differs from JoinFtsTerms(QueryTerms)");
  }
  if (terms.empty() != query.empty()) ds::fuzz::Fail("empty query iff no terms");
  if (query.empty()) return 0;
  MustMatch(query, text);
  for (const auto& t : terms) MustMatch(ds::memory::JoinFtsTerms({t}), text);
  return 0;
}
