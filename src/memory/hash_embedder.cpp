// The hash embedder's features, each hashed (FNV-1a, a per-kind seed) into one
// of `dim` buckets with a sign taken from the hash (signed feature hashing,
// so collisions cancel rather than pile up):
//   - words: lower-cased identifier parts (camelCase, snake_case, kebab-case
//     and digits split apart) with a light suffix strip (Stem), and the whole
//     identifier, stop words dropped;
//   - bigrams of consecutive words;
//   - character trigrams of each word with boundary marks ("#pa", "par", ...),
//     which let "auth" meet "authentication" and survive typos.
// Counts become weights 1 + ln(count) (sublinear tf) times a per-kind weight;
// the vector is L2-normalised. Deterministic across runs and machines.
#include <atomic>
#include <cmath>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "memory/embedder.h"

namespace ds::memory {
namespace {

constexpr uint64_t kWordSeed = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kBigramSeed = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kTrigramSeed = 0x165667B19E3779F9ull;
constexpr float kWordWeight = 1.0f;
constexpr float kBigramWeight = 0.7f;
constexpr float kTrigramWeight = 0.35f;

uint64_t Fnv1a(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // Final avalanche so low bits (the bucket) depend on every byte.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

const std::unordered_set<std::string_view>& StopWords() {
  static const std::unordered_set<std::string_view> words{
      "a",     "an",     "the",   "and",  "or",   "but",   "if",   "then",  "else", "of",
      "to",    "in",     "on",    "at",   "by",   "for",   "with", "from",  "as",   "is",
      "are",   "was",    "were",  "be",   "been", "it",    "its",  "this",  "that", "these",
      "those", "we",     "you",   "i",    "he",   "she",   "they", "them",  "our",  "your",
      "my",    "me",     "do",    "does", "did",  "so",    "not",  "no",    "can",  "will",
      "would", "should", "could", "has",  "have", "had",   "into", "about", "what", "which",
      "when",  "where",  "how",   "why",  "who",  "there", "here", "all",   "any",  "some"};
  return words;
}

// A light English suffix stripper (retries -> retry, parsing -> pars,
// handlers -> handler) so inflections share a feature; not a full stemmer.
std::string Stem(const std::string& w) {
  auto ends = [&](std::string_view suf) {
    return w.size() > suf.size() + 2 && w.compare(w.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends("ies")) return w.substr(0, w.size() - 3) + "y";
  if (ends("sses")) return w.substr(0, w.size() - 2);
  if (ends("ing")) return w.substr(0, w.size() - 3);
  if (ends("ed")) return w.substr(0, w.size() - 2);
  if (ends("es") && (w[w.size() - 3] == 'x' || w[w.size() - 3] == 'h'))
    return w.substr(0, w.size() - 2);
  if (ends("s") && w[w.size() - 2] != 's') return w.substr(0, w.size() - 1);
  return w;
}

bool IsAlnum(unsigned char c) {
  return std::isalnum(c) || c >= 0x80;
}

// Splits text into words: identifiers are cut at case changes, underscores,
// hyphens, dots and letter/digit boundaries; bytes >= 0x80 (UTF-8) stay in words.
void Words(std::string_view text, std::vector<std::string>* words,
           std::vector<std::string>* identifiers) {
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !IsAlnum(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && (IsAlnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
      ++i;
    }
    if (start == i) continue;
    std::string_view ident = text.substr(start, i - start);
    std::string lower_ident;
    std::vector<std::string> parts;
    std::string cur;
    auto flush = [&] {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    };
    for (size_t j = 0; j < ident.size(); ++j) {
      unsigned char c = static_cast<unsigned char>(ident[j]);
      if (c == '_') {
        flush();
        continue;
      }
      bool upper = std::isupper(c);
      bool digit = std::isdigit(c);
      if (!cur.empty()) {
        unsigned char prev = static_cast<unsigned char>(ident[j - 1]);
        bool prev_lower = std::islower(prev);
        bool prev_digit = std::isdigit(prev);
        bool next_lower =
            j + 1 < ident.size() && std::islower(static_cast<unsigned char>(ident[j + 1]));
        // fooBar | HTTPServer -> HTTP Server | abc123 -> abc 123
        if ((upper && (prev_lower || prev_digit)) || (upper && std::isupper(prev) && next_lower) ||
            (digit != prev_digit && c < 0x80 && prev < 0x80)) {
          flush();
        }
      }
      char lc = static_cast<char>(c < 0x80 ? std::tolower(c) : c);
      cur.push_back(lc);
      if (ident[j] != '_') lower_ident.push_back(lc);
    }
    flush();
    if (parts.size() > 1) identifiers->push_back(lower_ident);
    for (auto& p : parts) words->push_back(std::move(p));
  }
}

}  // namespace

HashEmbedder::HashEmbedder(int dim) : dim_(dim), model_("hash-v1-" + std::to_string(dim)) {}

Vector HashEmbedder::EmbedOne(std::string_view text) const {
  std::vector<std::string> words, identifiers;
  Words(text, &words, &identifiers);
  std::unordered_map<uint64_t, std::pair<int, float>> features;  // hash -> (count, weight)
  auto add = [&](std::string_view f, uint64_t seed, float weight) {
    auto& e = features[Fnv1a(f, seed)];
    e.first += 1;
    e.second = weight;
  };
  const auto& stop = StopWords();
  std::string prev;
  for (const auto& w : words) {
    bool is_stop = stop.count(w) > 0;
    if (!is_stop) {
      std::string stem = Stem(w);
      add(stem, kWordSeed, kWordWeight);
      if (w.size() >= 3) {
        std::string marked = "#" + w + "#";
        for (size_t i = 0; i + 3 <= marked.size(); ++i) {
          add(std::string_view(marked).substr(i, 3), kTrigramSeed, kTrigramWeight);
        }
      }
      if (!prev.empty()) add(prev + " " + stem, kBigramSeed, kBigramWeight);
      prev = stem;
    }
  }
  for (const auto& id : identifiers) add(id, kWordSeed, kWordWeight);

  Vector v(static_cast<size_t>(dim_), 0.0f);
  for (const auto& [h, cw] : features) {
    float weight = (1.0f + std::log(static_cast<float>(cw.first))) * cw.second;
    size_t bucket = static_cast<size_t>(h % static_cast<uint64_t>(dim_));
    v[bucket] += (h >> 63) ? -weight : weight;
  }
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  if (norm > 0) {
    float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : v) x *= inv;
  }
  return v;
}

double HashEmbedder::NoiseFloor() const {
  return 2.0 / std::sqrt(static_cast<double>(dim_));
}

Result<std::vector<Vector>> HashEmbedder::Embed(const std::vector<std::string>& texts) {
  std::vector<Vector> out(texts.size());
  // Batches are embedded on all cores: embedding was ~40% of ingest time.
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
  if (texts.size() < 64 || threads < 2) {
    for (size_t i = 0; i < texts.size(); ++i) out[i] = EmbedOne(texts[i]);
    return out;
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < texts.size(); i = next++) out[i] = EmbedOne(texts[i]);
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return out;
}

}  // namespace ds::memory
