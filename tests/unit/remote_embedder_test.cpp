// RemoteEmbedder against a real HTTP server in the test process that speaks
// the Ollama and OpenAI embedding protocols.
#include "memory/remote_embedder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "api/http_server.h"
#include "api/router.h"
#include "core/json.h"

namespace ds::memory {
namespace {

constexpr int kDim = 8;

// A fake embedding server: each text embeds to a vector derived from its length.
class FakeEmbeddingServer {
 public:
  FakeEmbeddingServer() {
    auto handler = [this](api::Request& req) {
      ++calls;
      int fail = fail_next.load();
      if (fail > 0) {
        fail_next = fail - 1;
        api::Response r;
        r.status = fail_status;
        r.body = "{\"error\":\"busy\"}";
        return r;
      }
      auto body = ParseJson(req.body).value();
      const auto& input = body.at("input").as_array();
      max_batch = std::max<int>(max_batch, static_cast<int>(input.size()));
      json::array vectors;
      for (const auto& t : input) {
        json::array v;
        size_t n = t.as_string().size();
        for (int i = 0; i < dim; ++i) v.emplace_back(static_cast<double>((n + i) % 5 + 1));
        vectors.push_back(std::move(v));
      }
      if (req.path == "/api/embed") {
        return api::JsonResponse(200, json::object{{"embeddings", std::move(vectors)}});
      }
      json::array data;
      // Reversed order with explicit indices: the client must honour "index".
      for (size_t i = vectors.size(); i-- > 0;) {
        data.push_back(json::object{{"index", static_cast<int64_t>(i)}, {"embedding", vectors[i]}});
      }
      return api::JsonResponse(200, json::object{{"data", std::move(data)}});
    };
    router_.Add("POST", "/api/embed", handler);
    router_.Add("POST", "/v1/embeddings", handler);
    api::ServerOptions o;
    o.port = 0;
    server_ = std::make_unique<api::HttpServer>(o, router_);
    EXPECT_TRUE(server_->Start().ok());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::atomic<int> calls{0};
  std::atomic<int> fail_next{0};
  int fail_status = 500;
  int dim = kDim;
  std::atomic<int> max_batch{0};

 private:
  api::Router router_;
  std::unique_ptr<api::HttpServer> server_;
};

RemoteEmbedderOptions Options(const std::string& provider, const std::string& url) {
  RemoteEmbedderOptions o;
  o.provider = provider;
  o.base_url = url;
  o.model = "test-model";
  o.dim = kDim;
  o.batch_size = 3;
  o.backoff_base_ms = 1;
  o.max_retries = 2;
  o.connect_timeout_ms = 500;
  o.timeout_ms = 2000;
  return o;
}

TEST(RemoteEmbedderTest, OllamaBatchesNormalisesAndCaches) {
  FakeEmbeddingServer server;
  RemoteEmbedder e(Options("ollama", server.url()));
  std::vector<std::string> texts{"a", "bb", "ccc", "dddd", "eeeee", "a"};
  auto r = e.Embed(texts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), texts.size());
  for (const auto& v : *r) {
    ASSERT_EQ(v.size(), static_cast<size_t>(kDim));
    double norm = 0;
    for (float x : v) norm += x * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
  EXPECT_EQ((*r)[0], (*r)[5]);
  EXPECT_LE(server.max_batch.load(), 3);
  int calls = server.calls;
  EXPECT_EQ(calls, 2) << "6 texts in batches of 3";
  auto again = e.Embed({"a", "bb"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(server.calls.load(), calls) << "cached texts must not hit the server";
  EXPECT_EQ(e.model(), "ollama:test-model");
}

TEST(RemoteEmbedderTest, OpenAiHonoursIndexOrder) {
  FakeEmbeddingServer server;
  RemoteEmbedder a(Options("openai", server.url()));
  RemoteEmbedder b(Options("ollama", server.url()));
  auto ra = a.Embed({"x", "yyyy", "zz"});
  auto rb = b.Embed({"x", "yyyy", "zz"});
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(*ra, *rb);
}

TEST(RemoteEmbedderTest, RetriesServerErrorsAndRateLimits) {
  FakeEmbeddingServer server;
  server.fail_next = 2;
  server.fail_status = 503;
  RemoteEmbedder e(Options("ollama", server.url()));
  auto r = e.Embed({"hello"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server.calls.load(), 3);

  server.fail_next = 1;
  server.fail_status = 429;
  ASSERT_TRUE(e.Embed({"other"}).ok());
}

TEST(RemoteEmbedderTest, GivesUpAfterMaxRetries) {
  FakeEmbeddingServer server;
  server.fail_next = 10;
  RemoteEmbedder e(Options("ollama", server.url()));
  auto r = e.Embed({"hello"});
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.calls.load(), 3) << "1 try + 2 retries";
}

TEST(RemoteEmbedderTest, ClientErrorsAreNotRetried) {
  FakeEmbeddingServer server;
  server.fail_next = 10;
  server.fail_status = 400;
  RemoteEmbedder e(Options("ollama", server.url()));
  auto r = e.Embed({"hello"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(server.calls.load(), 1);
}

TEST(RemoteEmbedderTest, WrongDimensionIsAnError) {
  FakeEmbeddingServer server;
  server.dim = kDim + 1;
  RemoteEmbedder e(Options("ollama", server.url()));
  auto r = e.Embed({"hello"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dimensions"), std::string::npos) << r.status().message();
}

TEST(RemoteEmbedderTest, UnreachableServerIsUnavailable) {
  RemoteEmbedderOptions o = Options("ollama", "http://127.0.0.1:1");
  o.max_retries = 1;
  RemoteEmbedder e(o);
  EXPECT_EQ(e.Embed({"hello"}).status().code(), StatusCode::kUnavailable);
}

TEST(EmbeddingCacheTest, EvictsLeastRecentlyUsed) {
  EmbeddingCache c(2);
  c.Put("a", {1});
  c.Put("b", {2});
  Vector v;
  ASSERT_TRUE(c.Get("a", &v));  // a is now most recent
  c.Put("c", {3});
  EXPECT_FALSE(c.Get("b", &v));
  EXPECT_TRUE(c.Get("a", &v));
  EXPECT_TRUE(c.Get("c", &v));
  EXPECT_EQ(c.size(), 2u);
}

}  // namespace
}  // namespace ds::memory

namespace ds::memory {
namespace {

// memory.embedding.dim applies to the built-in hash embedder too (its model
// id names the dimension, so a change re-embeds like any model change).
TEST(EmbedderConfigTest, HashEmbedderHonoursTheDimension) {
  EmbedderSettings plain;
  plain.provider = "hash";
  auto d = MakeEmbedder(ResolveEmbedderConfig(plain).value()).value();
  EXPECT_EQ(d->dim(), 384);
  EXPECT_EQ(d->model(), "hash-v1-384");
  EmbedderSettings wide = plain;
  wide.dim = 768;
  auto w = MakeEmbedder(ResolveEmbedderConfig(wide).value()).value();
  EXPECT_EQ(w->dim(), 768);
  EXPECT_EQ(w->model(), "hash-v1-768");
  auto v = w->Embed({"lease reaper deadlock"});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->at(0).size(), 768u);
  wide.dim = 4;
  EXPECT_FALSE(ResolveEmbedderConfig(wide).ok());
}

}  // namespace
}  // namespace ds::memory
