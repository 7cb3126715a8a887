// Embedder turns texts into fixed-size float vectors for similarity search.
// Every vector is tagged with model() and dim(); vectors of different models
// are never compared. HashEmbedder is the embedded default: deterministic, no
// network, 384 dims (see hash_embedder.cpp for the features).
// Thread-safety: implementations must allow concurrent Embed() calls.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ds::memory {

using Vector = std::vector<float>;

// How to reach a model again (recorded in embedding_models; never a secret).
struct EmbedderIdentity {
  std::string provider;  // hash | ollama | openai
  std::string base_url;
  std::string model_name;
  int dim = 0;
};

class Embedder {
 public:
  virtual ~Embedder() = default;
  // Empty provider: not recordable (test doubles); the model cannot serve as
  // a fallback after a switch.
  virtual EmbedderIdentity Identity() const { return {}; }
  virtual const std::string& model() const = 0;
  virtual int dim() const = 0;
  // One vector per text, L2-normalised, in order. Unavailable when the
  // provider cannot be reached (callers degrade to keyword search).
  virtual Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) = 0;
  // Cosine similarity below which a vector match is noise for this model;
  // search drops such matches from the vector ranking.
  virtual double NoiseFloor() const { return 0.0; }
  // The weight of this model's ranking in hybrid fusion (keyword = 1).
  virtual double FusionWeight() const { return 1.0; }
};

class HashEmbedder : public Embedder {
 public:
  explicit HashEmbedder(int dim = 384);
  EmbedderIdentity Identity() const override { return {"hash", "", "", dim_}; }
  const std::string& model() const override { return model_; }
  int dim() const override { return dim_; }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) override;
  // Unrelated texts hash to nearly orthogonal vectors: their cosine is
  // roughly normal with sd 1/sqrt(dim) (0.05 at 384 dims); two sd above it.
  double NoiseFloor() const override;
  // Its features are lexical, so its ranking largely repeats BM25's evidence:
  // it votes at half weight (eval/retrieval: hybrid recall@5 0.708 at 1.0,
  // 0.736 at 0.4-0.8, equal to keyword alone).
  double FusionWeight() const override { return 0.5; }

  // The single-text form, for tests and callers that hold one text.
  Vector EmbedOne(std::string_view text) const;

 private:
  int dim_;
  std::string model_;
};

}  // namespace ds::memory
