#include "memory/keyword_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <shared_mutex>

namespace ds::memory {

namespace {

// FTS5's bm25() defaults (fts5_aux.c).
constexpr double kK1 = 1.2;
constexpr double kB = 0.75;

}  // namespace

KeywordIndex::KeywordIndex(std::unique_ptr<FtsTokenizer> tokenizer, KeywordIndexOptions opts)
    : tokenizer_(std::move(tokenizer)), opts_(opts) {}

Status KeywordIndex::Upsert(const std::string& partition, int64_t memory_id,
                            std::string_view content, std::string_view keywords, VectorMeta meta) {
  // Tokenized under the lock, straight into term ids: a document takes a few
  // microseconds, and copying and sorting its tokens as strings first cost
  // more than the rest of indexing it.
  std::unique_lock<RwMutex> lock(mu_);
  // Removed first: it may free term ids the new text is about to take.
  RemoveLocked(memory_id);
  std::vector<uint32_t> terms;
  uint32_t length = 0;
  auto add = [&](std::string_view token) {
    auto it = term_ids_.find(token);
    if (it == term_ids_.end()) {
      uint32_t id;
      if (!free_terms_.empty()) {
        id = free_terms_.back();
        free_terms_.pop_back();
      } else {
        id = static_cast<uint32_t>(df_.size());
        df_.push_back(0);
        term_text_.push_back(nullptr);
      }
      it = term_ids_.emplace(std::string(token), id).first;
      term_text_[id] = &it->first;
    }
    terms.push_back(it->second);
    ++length;
  };
  DS_RETURN_IF_ERROR(tokenizer_->Tokenize(content, FtsTokenizer::Mode::kDocument, add));
  DS_RETURN_IF_ERROR(tokenizer_->Tokenize(keywords, FtsTokenizer::Mode::kDocument, add));
  std::sort(terms.begin(), terms.end());

  auto& owner = partitions_[partition];
  if (!owner) owner = std::make_unique<Partition>();
  Partition& p = *owner;
  if (p.docs.size() >= std::numeric_limits<uint32_t>::max()) {
    return Status::TooLarge("keyword index partition is full");
  }
  const auto slot = static_cast<uint32_t>(p.docs.size());
  Doc& doc = p.docs.emplace_back();
  doc.id = memory_id;
  doc.length = length;
  doc.meta = meta;
  size_t distinct = 0;
  for (size_t i = 0; i < terms.size(); ++i) distinct += i == 0 || terms[i] != terms[i - 1];
  doc.terms.reserve(distinct);
  for (size_t i = 0; i < terms.size();) {
    size_t j = i;
    while (j < terms.size() && terms[j] == terms[i]) ++j;
    ++df_[terms[i]];
    p.postings[terms[i]].push_back({slot, static_cast<uint32_t>(j - i)});
    doc.terms.push_back(terms[i]);
    i = j;
  }
  where_[memory_id] = Location{&p, slot};
  ++rows_;
  total_length_ += length;
  return Status::Ok();
}

void KeywordIndex::SetMeta(int64_t memory_id, VectorMeta meta) {
  std::unique_lock<RwMutex> lock(mu_);
  auto it = where_.find(memory_id);
  if (it != where_.end()) it->second.partition->docs[it->second.slot].meta = meta;
}

void KeywordIndex::Remove(int64_t memory_id) {
  std::unique_lock<RwMutex> lock(mu_);
  RemoveLocked(memory_id);
}

void KeywordIndex::RemoveLocked(int64_t memory_id) {
  auto it = where_.find(memory_id);
  if (it == where_.end()) return;
  Partition& p = *it->second.partition;
  Doc& doc = p.docs[it->second.slot];
  for (uint32_t term : doc.terms) {
    // A term no live memory has any more gives its id back, so text that
    // churns (deleted or rewritten) does not grow the dictionary forever.
    // Postings that still carry the id are all dead, and stay skipped.
    if (--df_[term] == 0) {
      term_ids_.erase(term_ids_.find(std::string_view(*term_text_[term])));
      term_text_[term] = nullptr;
      free_terms_.push_back(term);
    }
  }
  --rows_;
  total_length_ -= doc.length;
  doc.present = false;
  doc.terms = {};
  where_.erase(it);
  ++p.dead;
  if (p.dead >= 64 && p.dead * 4 >= p.docs.size()) CompactLocked(p);
}

void KeywordIndex::CompactLocked(Partition& p) {
  std::vector<uint32_t> moved(p.docs.size(), std::numeric_limits<uint32_t>::max());
  std::vector<Doc> docs;
  docs.reserve(p.docs.size() - p.dead);
  for (size_t s = 0; s < p.docs.size(); ++s) {
    if (!p.docs[s].present) continue;
    moved[s] = static_cast<uint32_t>(docs.size());
    where_[p.docs[s].id].slot = moved[s];
    docs.push_back(std::move(p.docs[s]));
  }
  for (auto it = p.postings.begin(); it != p.postings.end();) {
    std::vector<Posting>& list = it->second;
    size_t out = 0;
    for (const Posting& posting : list) {
      if (moved[posting.slot] == std::numeric_limits<uint32_t>::max()) continue;
      list[out++] = Posting{moved[posting.slot], posting.tf};
    }
    list.resize(out);
    if (list.empty()) {
      it = p.postings.erase(it);
    } else {
      list.shrink_to_fit();
      ++it;
    }
  }
  p.docs = std::move(docs);
  p.dead = 0;
}

void KeywordIndex::Clear() {
  std::unique_lock<RwMutex> lock(mu_);
  term_ids_.clear();
  df_.clear();
  term_text_.clear();
  free_terms_.clear();
  partitions_.clear();
  where_.clear();
  rows_ = 0;
  total_length_ = 0;
}

Result<std::vector<KeywordHit>> KeywordIndex::Search(
    const std::string& partition, std::string_view query, size_t k, uint32_t type_mask,
    bool include_dead, const std::function<bool(int64_t)>& accept) const {
  std::vector<std::string> tokens;
  DS_RETURN_IF_ERROR(
      tokenizer_->Tokenize(query, FtsTokenizer::Mode::kQuery, [&](std::string_view token) {
        if (tokens.size() < opts_.max_query_terms &&
            std::find(tokens.begin(), tokens.end(), token) == tokens.end()) {
          tokens.emplace_back(token);
        }
      }));
  std::vector<KeywordHit> hits;
  if (tokens.empty() || k == 0) return hits;

  std::shared_lock<RwMutex> lock(mu_);
  auto part = partitions_.find(partition);
  if (part == partitions_.end() || rows_ == 0) return hits;
  const Partition& p = *part->second;
  struct QueryTerm {
    const std::vector<Posting>* postings;
    uint32_t df;
    double idf;
  };
  std::vector<QueryTerm> terms;
  for (const auto& token : tokens) {
    auto id = term_ids_.find(std::string_view(token));
    if (id == term_ids_.end() || df_[id->second] == 0) continue;
    auto list = p.postings.find(id->second);
    if (list == p.postings.end() || list->second.empty()) continue;
    const double df = df_[id->second];
    double idf = std::log((static_cast<double>(rows_) - df + 0.5) / (df + 0.5));
    if (idf <= 0.0) idf = 1e-6;
    terms.push_back({&list->second, df_[id->second], idf});
  }
  if (terms.empty()) return hits;
  std::stable_sort(terms.begin(), terms.end(),
                   [](const QueryTerm& a, const QueryTerm& b) { return a.df < b.df; });
  size_t kept = 0, postings = 0;
  while (kept < terms.size() &&
         (kept == 0 || postings + terms[kept].postings->size() <= opts_.posting_budget)) {
    postings += terms[kept].postings->size();
    ++kept;
  }

  const double avgdl = static_cast<double>(total_length_) / static_cast<double>(rows_);
  auto passes = [&](const Doc& d) {
    return d.present && (type_mask == 0 || (d.meta.content_type_bit & type_mask) != 0) &&
           (include_dead || d.meta.live) && (!accept || accept(d.id));
  };
  auto contribution = [&](const QueryTerm& t, const Posting& posting) {
    // The same expression, in the same order, as fts5Bm25Function.
    const double tf = posting.tf;
    const double dl = p.docs[posting.slot].length;
    return t.idf * (tf * (kK1 + 1.0)) / (tf + kK1 * (1 - kB + kB * dl / avgdl));
  };
  std::vector<std::pair<uint32_t, double>> scored;
  if (terms[0].postings->size() > opts_.posting_budget) {
    // Even the rarest term is too common: its newest matches only.
    const auto& list = *terms[0].postings;
    for (auto it = list.rbegin(); it != list.rend() && scored.size() < opts_.posting_budget; ++it) {
      if (passes(p.docs[it->slot])) scored.emplace_back(it->slot, contribution(terms[0], *it));
    }
  } else {
    for (size_t t = 0; t < kept; ++t) {
      for (const Posting& posting : *terms[t].postings) {
        if (passes(p.docs[posting.slot])) {
          scored.emplace_back(posting.slot, contribution(terms[t], posting));
        }
      }
    }
  }
  if (scored.empty()) return hits;
  std::sort(scored.begin(), scored.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < scored.size();) {
    double sum = 0;
    size_t j = i;
    for (; j < scored.size() && scored[j].first == scored[i].first; ++j) sum += scored[j].second;
    scored[out++] = {scored[i].first, sum};
    i = j;
  }
  scored.resize(out);
  auto better = [&](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return p.docs[a.first].id > p.docs[b.first].id;
  };
  const size_t n = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n), scored.end(),
                    better);
  hits.reserve(n);
  for (size_t i = 0; i < n; ++i) hits.push_back({p.docs[scored[i].first].id, -scored[i].second});
  return hits;
}

size_t KeywordIndex::Size() const {
  std::shared_lock<RwMutex> lock(mu_);
  return rows_;
}

size_t KeywordIndex::MemoryBytes() const {
  std::shared_lock<RwMutex> lock(mu_);
  size_t bytes = df_.capacity() * sizeof(uint32_t) + term_text_.capacity() * sizeof(void*) +
                 free_terms_.capacity() * sizeof(uint32_t) +
                 where_.size() * (sizeof(Location) + 32);
  for (const auto& [term, id] : term_ids_) bytes += term.capacity() + 48;
  for (const auto& [name, p] : partitions_) {
    bytes += p->docs.capacity() * sizeof(Doc);
    for (const Doc& d : p->docs) bytes += d.terms.capacity() * sizeof(uint32_t);
    for (const auto& [term, list] : p->postings) bytes += list.capacity() * sizeof(Posting) + 48;
  }
  return bytes;
}

}  // namespace ds::memory
