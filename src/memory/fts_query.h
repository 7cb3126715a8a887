// Builds FTS5 MATCH expressions from arbitrary user text. The text is split
// into terms the same way the unicode61 tokenizer splits (runs of letters and
// digits, any non-ASCII byte counting as a letter); each term is emitted as a
// double-quoted string and the terms are OR-joined, so no input can form FTS5
// syntax: paths, code, quotes, '.', '-', '?', '*', unbalanced parentheses and
// keywords like NEAR/AND are all just words. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ds::memory {

// The terms of `text` (lower-cased, deduplicated, in order), at most `max_terms`.
std::vector<std::string> QueryTerms(std::string_view text, size_t max_terms = 64);
// "\"term1\" OR \"term2\" ..."; empty when the text has no terms.
std::string BuildFtsQuery(std::string_view text, size_t max_terms = 64);
// The same MATCH expression for terms QueryTerms produced (or a subset).
std::string JoinFtsTerms(const std::vector<std::string>& terms);

}  // namespace ds::memory
