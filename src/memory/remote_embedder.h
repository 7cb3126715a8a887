// RemoteEmbedder calls an embedding server over HTTP: Ollama (POST /api/embed,
// {"model", "input": [...]} -> {"embeddings": [[...]]}) or any OpenAI-compatible
// server (POST /v1/embeddings -> {"data": [{"index", "embedding"}]}: OpenAI,
// llama.cpp server, vLLM, TEI, LM Studio).
// Batches requests (batch_size texts each), bounds connect and total time,
// retries 429/5xx/network failures with exponential backoff plus jitter (never
// other 4xx), caches vectors in an LRU keyed by (model, BLAKE2b(text)), checks
// every vector has `dim` values and L2-normalises it.
// Thread-safety: Embed() may run concurrently (one curl handle per call; the
// cache has its own lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "memory/embedder.h"
#include "memory/vector_index.h"

namespace ds::memory {

struct RemoteEmbedderOptions {
  std::string provider = "ollama";  // ollama | openai
  std::string base_url = "http://127.0.0.1:11434";
  std::string model = "embeddinggemma:300m";
  int dim = 768;
  std::string api_key;  // sent as "Authorization: Bearer" when set
  int batch_size = 32;
  int connect_timeout_ms = 2000;
  int timeout_ms = 30000;
  int max_retries = 3;
  int backoff_base_ms = 200;
  size_t cache_entries = 10000;
  double noise_floor = 0.0;
};

// A bounded least-recently-used map from a text's key to its vector.
class EmbeddingCache {
 public:
  explicit EmbeddingCache(size_t capacity) : capacity_(capacity) {}
  bool Get(const std::string& key, Vector* out);
  void Put(const std::string& key, const Vector& v);
  size_t size() const;

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<std::pair<std::string, Vector>> order_;  // front = most recent
  std::unordered_map<std::string, std::list<std::pair<std::string, Vector>>::iterator> map_;
};

class RemoteEmbedder : public Embedder {
 public:
  explicit RemoteEmbedder(RemoteEmbedderOptions opts);
  EmbedderIdentity Identity() const override {
    return {opts_.provider, opts_.base_url, opts_.model, opts_.dim};
  }
  const std::string& model() const override { return model_id_; }
  int dim() const override { return opts_.dim; }
  double NoiseFloor() const override { return opts_.noise_floor; }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) override;

  // Requests sent to the server so far (tests and metrics).
  int64_t requests() const { return requests_; }
  int64_t cache_hits() const { return cache_hits_; }

 private:
  Result<std::vector<Vector>> EmbedBatch(const std::vector<std::string>& texts);

  RemoteEmbedderOptions opts_;
  std::string model_id_;  // "<provider>:<model>"
  EmbeddingCache cache_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> cache_hits_{0};
};

struct EmbedderConfig {
  std::string provider = "hash";  // hash | ollama | openai
  RemoteEmbedderOptions remote;
};

// What configuration may set; everything unset takes the provider's
// default (ollama: http://127.0.0.1:11434, or OLLAMA_HOST; embeddinggemma:300m,
// 768 dims. openai: https://api.openai.com, text-embedding-3-small, 1536
// dims, OPENAI_API_KEY).
struct EmbedderSettings {
  std::string provider = "hash";
  std::optional<std::string> url, model, api_key, ollama_host, openai_api_key;
  std::optional<int> dim;
};
Result<EmbedderConfig> ResolveEmbedderConfig(const EmbedderSettings& settings);
Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderConfig& config);
// An embedder for a recorded model (the previous model after a switch); the
// API key comes from DEVSTREAM_PREVIOUS_EMBEDDING_API_KEY, else the current
// key variables.
Result<std::unique_ptr<Embedder>> MakeEmbedderFor(const EmbedderIdentity& identity);

}  // namespace ds::memory
