#include "memory/remote_embedder.h"

#include <sodium.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/http_client.h"
#include "core/json.h"

namespace ds::memory {

// ---- cache ----

bool EmbeddingCache::Get(const std::string& key, Vector* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  order_.splice(order_.begin(), order_, it->second);
  *out = it->second->second;
  return true;
}

void EmbeddingCache::Put(const std::string& key, const Vector& v) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    it->second->second = v;
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.emplace_front(key, v);
  map_[key] = order_.begin();
  if (map_.size() > capacity_) {
    map_.erase(order_.back().first);
    order_.pop_back();
  }
}

size_t EmbeddingCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

// ---- HTTP ----

namespace {

HttpReply Post(const std::string& url, const std::string& body, const std::string& api_key,
               int connect_timeout_ms, int timeout_ms) {
  HttpCall call;
  call.method = "POST";
  call.url = url;
  call.body = body;
  call.headers = {"Content-Type: application/json"};
  if (!api_key.empty()) call.headers.push_back("Authorization: Bearer " + api_key);
  call.connect_timeout_ms = connect_timeout_ms;
  call.timeout_ms = timeout_ms;
  // Bounded: a 1000-text batch of 4096-d vectors is ~80 MB of JSON.
  call.max_reply_bytes = 256u << 20;
  return HttpRequest(call);
}

std::string CacheKey(const std::string& model, const std::string& text) {
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                     reinterpret_cast<const unsigned char*>(model.data()), 0);
  std::string key = model;
  key.push_back('\0');
  key.append(reinterpret_cast<const char*>(h), sizeof h);
  return key;
}

Status Normalise(Vector* v) {
  double norm = 0;
  for (float x : *v) {
    if (!std::isfinite(x)) return Status::Unavailable("embedding contains NaN or infinity");
    norm += static_cast<double>(x) * x;
  }
  if (norm <= 0) return Status::Unavailable("embedding is all zeros");
  float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : *v) x *= inv;
  return Status::Ok();
}

Result<Vector> ParseVector(const json::value& v, int dim) {
  if (!v.is_array()) return Status::Unavailable("embedding is not an array");
  const auto& a = v.get_array();
  if (static_cast<int>(a.size()) != dim) {
    return Status::Unavailable("embedding has " + std::to_string(a.size()) + " dimensions, " +
                               "configured " + std::to_string(dim) +
                               " (set DEVSTREAM_EMBEDDING_DIM to the model's size)");
  }
  Vector out;
  out.reserve(a.size());
  for (const auto& x : a) {
    if (!x.is_number()) return Status::Unavailable("embedding holds a non-number");
    out.push_back(static_cast<float>(x.to_number<double>()));
  }
  DS_RETURN_IF_ERROR(Normalise(&out));
  return out;
}

}  // namespace

RemoteEmbedder::RemoteEmbedder(RemoteEmbedderOptions opts)
    : opts_(std::move(opts)),
      model_id_(opts_.provider + ":" + opts_.model),
      cache_(opts_.cache_entries) {
  while (!opts_.base_url.empty() && opts_.base_url.back() == '/') opts_.base_url.pop_back();
  if (opts_.batch_size < 1) opts_.batch_size = 1;
}

Result<std::vector<Vector>> RemoteEmbedder::EmbedBatch(const std::vector<std::string>& texts) {
  json::array input;
  for (const auto& t : texts) input.emplace_back(t);
  json::object req{{"model", opts_.model}, {"input", std::move(input)}};
  std::string url = opts_.base_url + (opts_.provider == "ollama" ? "/api/embed" : "/v1/embeddings");
  std::string body = json::serialize(req);
  thread_local std::mt19937 rng{std::random_device{}()};
  std::string last_error;
  for (int attempt = 0; attempt <= opts_.max_retries; ++attempt) {
    if (attempt > 0) {
      int base = opts_.backoff_base_ms << (attempt - 1);
      std::uniform_int_distribution<int> jitter(0, std::max(1, base));
      std::this_thread::sleep_for(std::chrono::milliseconds(base + jitter(rng)));
    }
    ++requests_;
    HttpReply reply = Post(url, body, opts_.api_key, opts_.connect_timeout_ms, opts_.timeout_ms);
    if (!reply.error.empty()) {
      last_error = url + ": " + reply.error;
      continue;  // network failures are retried
    }
    if (reply.status == 429 || reply.status >= 500) {
      last_error = url + " answered HTTP " + std::to_string(reply.status);
      continue;
    }
    if (reply.status != 200) {
      std::string snippet = reply.body.substr(0, 300);
      return Status::Unavailable(url + " answered HTTP " + std::to_string(reply.status) +
                                 " (not retried): " + snippet);
    }
    auto parsed = ParseJson(reply.body, 8);
    if (!parsed.ok() || !parsed->is_object()) {
      return Status::Unavailable(url + " returned a body that is not a JSON object");
    }
    const json::object& o = parsed->get_object();
    std::vector<Vector> out(texts.size());
    if (opts_.provider == "ollama") {
      auto it = o.find("embeddings");
      if (it == o.end() || !it->value().is_array() ||
          it->value().get_array().size() != texts.size()) {
        return Status::Unavailable(url + " returned no \"embeddings\" array of the right size");
      }
      for (size_t i = 0; i < texts.size(); ++i) {
        DS_ASSIGN_OR_RETURN(out[i], ParseVector(it->value().get_array()[i], opts_.dim));
      }
    } else {
      auto it = o.find("data");
      if (it == o.end() || !it->value().is_array() ||
          it->value().get_array().size() != texts.size()) {
        return Status::Unavailable(url + " returned no \"data\" array of the right size");
      }
      std::vector<bool> seen(texts.size(), false);
      size_t pos = 0;
      for (const auto& item : it->value().get_array()) {
        if (!item.is_object() || !item.get_object().contains("embedding")) {
          return Status::Unavailable(url + " returned a data item without \"embedding\"");
        }
        size_t index = pos++;
        if (auto idx = item.get_object().find("index");
            idx != item.get_object().end() && idx->value().is_int64()) {
          index = static_cast<size_t>(idx->value().get_int64());
        }
        if (index >= texts.size() || seen[index]) {
          return Status::Unavailable(url + " returned a bad or repeated index");
        }
        seen[index] = true;
        DS_ASSIGN_OR_RETURN(out[index], ParseVector(item.get_object().at("embedding"), opts_.dim));
      }
    }
    return out;
  }
  return Status::Unavailable("embedding server unavailable after " +
                             std::to_string(opts_.max_retries + 1) + " attempts: " + last_error);
}

Result<std::vector<Vector>> RemoteEmbedder::Embed(const std::vector<std::string>& texts) {
  std::vector<Vector> out(texts.size());
  std::vector<size_t> missing;
  std::vector<std::string> keys(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    keys[i] = CacheKey(model_id_, texts[i]);
    if (cache_.Get(keys[i], &out[i])) {
      ++cache_hits_;
    } else {
      missing.push_back(i);
    }
  }
  for (size_t start = 0; start < missing.size(); start += static_cast<size_t>(opts_.batch_size)) {
    size_t end = std::min(missing.size(), start + static_cast<size_t>(opts_.batch_size));
    std::vector<std::string> batch;
    for (size_t j = start; j < end; ++j) batch.push_back(texts[missing[j]]);
    DS_ASSIGN_OR_RETURN(auto vectors, EmbedBatch(batch));
    for (size_t j = start; j < end; ++j) {
      out[missing[j]] = std::move(vectors[j - start]);
      cache_.Put(keys[missing[j]], out[missing[j]]);
    }
  }
  return out;
}

// ---- configuration ----

Result<EmbedderConfig> ResolveEmbedderConfig(const EmbedderSettings& in) {
  EmbedderConfig c;
  c.provider = in.provider;
  if (c.provider != "hash" && c.provider != "ollama" && c.provider != "openai") {
    return Status::InvalidArgument("memory.embedding.provider = " + c.provider +
                                   ": must be hash, ollama or openai");
  }
  c.remote.provider = c.provider;
  if (c.provider == "openai") {
    c.remote.base_url = "https://api.openai.com";
    c.remote.model = "text-embedding-3-small";
    c.remote.dim = 1536;
    c.remote.noise_floor = 0.2;
    if (in.openai_api_key) c.remote.api_key = *in.openai_api_key;
  } else if (c.provider == "ollama") {
    if (in.ollama_host) {
      const std::string& h = *in.ollama_host;
      c.remote.base_url = h.find("://") == std::string::npos ? "http://" + h : h;
    }
    c.remote.noise_floor = 0.2;
  }
  if (in.url) c.remote.base_url = *in.url;
  if (in.model) c.remote.model = *in.model;
  if (in.api_key) c.remote.api_key = *in.api_key;
  if (c.provider == "hash") c.remote.dim = 384;
  if (in.dim) {
    if (*in.dim < 8 || *in.dim > 8192) {
      return Status::InvalidArgument("memory.embedding.dim = " + std::to_string(*in.dim) +
                                     ": must be 8..8192");
    }
    c.remote.dim = *in.dim;
  }
  return c;
}

Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderConfig& config) {
  if (config.provider == "hash") {
    return std::unique_ptr<Embedder>(new HashEmbedder(config.remote.dim));
  }
  if (config.provider == "ollama" || config.provider == "openai") {
    RemoteEmbedderOptions o = config.remote;
    o.provider = config.provider;
    return std::unique_ptr<Embedder>(new RemoteEmbedder(o));
  }
  return Status::InvalidArgument("unknown embedding provider \"" + config.provider + "\"");
}

Result<std::unique_ptr<Embedder>> MakeEmbedderFor(const EmbedderIdentity& id) {
  if (id.dim < 1) return Status::InvalidArgument("recorded model has no dimension");
  if (id.provider == "hash") return std::unique_ptr<Embedder>(new HashEmbedder(id.dim));
  if (id.provider != "ollama" && id.provider != "openai") {
    return Status::InvalidArgument("unknown embedding provider \"" + id.provider + "\"");
  }
  RemoteEmbedderOptions o;
  o.provider = id.provider;
  o.base_url = id.base_url;
  o.model = id.model_name;
  o.dim = id.dim;
  o.noise_floor = 0.2;
  for (const char* var :
       {"DEVSTREAM_PREVIOUS_EMBEDDING_API_KEY", "DEVSTREAM_EMBEDDING_API_KEY", "OPENAI_API_KEY"}) {
    const char* v = std::getenv(var);
    if (v && *v) {
      o.api_key = v;
      break;
    }
  }
  return std::unique_ptr<Embedder>(new RemoteEmbedder(o));
}

}  // namespace ds::memory
