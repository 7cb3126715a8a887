#include "memory/fts_query.h"

#include <algorithm>
#include <cctype>

namespace ds::memory {

std::vector<std::string> QueryTerms(std::string_view text, size_t max_terms) {
  std::vector<std::string> terms;
  size_t i = 0;
  while (i < text.size() && terms.size() < max_terms) {
    auto is_term_byte = [](unsigned char c) { return std::isalnum(c) || c >= 0x80; };
    while (i < text.size() && !is_term_byte(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && is_term_byte(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i) continue;
    std::string term(text.substr(start, i - start));
    for (auto& c : term) {
      if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(std::tolower(c));
    }
    if (term.size() > 100) term.resize(100);
    if (std::find(terms.begin(), terms.end(), term) == terms.end()) terms.push_back(term);
  }
  return terms;
}

std::string BuildFtsQuery(std::string_view text, size_t max_terms) {
  return JoinFtsTerms(QueryTerms(text, max_terms));
}

std::string JoinFtsTerms(const std::vector<std::string>& terms) {
  std::string q;
  for (const auto& t : terms) {
    if (!q.empty()) q += " OR ";
    q += '"';
    q += t;  // terms hold no '"' (only letters, digits and non-ASCII bytes)
    q += '"';
  }
  return q;
}

}  // namespace ds::memory
