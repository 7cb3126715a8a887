// FtsTokenizer runs one of SQLite's FTS5 tokenizers outside any table, given
// the same spec a table's tokenize= option takes (for example
// "porter unicode61 remove_diacritics 2"). Text tokenized here yields exactly
// the tokens an FTS5 table with that spec stores for it, so an index kept
// beside the database (memory::KeywordIndex) agrees with the FTS5 index term
// for term. It owns a private in-memory SQLite connection, the source of the
// fts5_api the tokenizer comes from.
// Thread-safety: Tokenize may be called concurrently. FTS5's built-in
// tokenizers keep scratch buffers in each instance, so instances are pooled
// and each call holds one.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace ds {

class FtsTokenizer {
 public:
  enum class Mode { kDocument, kQuery };

  static Result<std::unique_ptr<FtsTokenizer>> Open(const std::string& spec);
  ~FtsTokenizer();
  FtsTokenizer(const FtsTokenizer&) = delete;
  FtsTokenizer& operator=(const FtsTokenizer&) = delete;

  // Calls fn(std::string_view token) for each token of `text`, in order.
  // Colocated tokens (synonyms at the same position) are skipped: FTS5 does
  // not count them in a document's length.
  template <typename Fn>
  Status Tokenize(std::string_view text, Mode mode, Fn&& fn) const {
    return TokenizeRaw(
        text, mode,
        [](void* ctx, const char* token, int n) {
          (*static_cast<std::remove_reference_t<Fn>*>(ctx))(
              std::string_view(token, static_cast<size_t>(n)));
        },
        &fn);
  }

 private:
  using Sink = void (*)(void* ctx, const char* token, int n);
  FtsTokenizer() = default;
  Status TokenizeRaw(std::string_view text, Mode mode, Sink sink, void* ctx) const;
  Result<::Fts5Tokenizer*> Acquire() const;
  void Release(::Fts5Tokenizer* instance) const;

  sqlite3* db_ = nullptr;
  fts5_tokenizer module_{};
  void* module_ctx_ = nullptr;
  std::vector<std::string> args_;  // the spec after the tokenizer's name
  mutable std::mutex mu_;
  mutable std::vector<::Fts5Tokenizer*> idle_;
};

}  // namespace ds
