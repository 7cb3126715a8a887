// The fuzz targets' shared world (see fuzz_world.h): services, router, MCP
// server and hook handler wired as `devstream serve` wires them.
#include "fuzz_world.h"

#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "api/access.h"
#include "api/engine_routes.h"
#include "api/guard.h"
#include "api/health.h"
#include "api/hook_routes.h"
#include "api/memory_routes.h"
#include "api/metrics.h"
#include "api/rest_api.h"
#include "app/services.h"
#include "app/settings.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "engine/job_handlers.h"
#include "mcp/devstream_tools.h"
#include "mcp/http_transport.h"
#include "store/api_keys.h"

namespace ds::fuzz {
namespace {

namespace fs = std::filesystem;

// Inputs served by one world before it is rebuilt on an empty database.
constexpr int kResetEvery = 2000;

// The directory holding the worlds' databases (removed at exit).
const std::string& TempRoot() {
  static const std::string* root = [] {
    fs::path dir =
        fs::temp_directory_path() / ("ds_fuzz_" + std::to_string(::getpid()) + "_" + RandomHex(4));
    fs::create_directories(dir);
    return new std::string(dir.string());
  }();
  return *root;
}

// Gates requests without an Authorization header through a guard with API
// keys off (the developer's loopback server) and the others through one with
// keys on, so both the handlers and the key checks see fuzzed input.
class SplitGate : public api::RouteGate {
 public:
  SplitGate(api::RouteGate& open, api::RouteGate& keyed) : open_(open), keyed_(keyed) {}
  std::optional<api::Response> Admit(api::Request& req) override { return Pick(req).Admit(req); }
  std::optional<api::Response> Authorize(api::Request& req, api::Access access) override {
    return Pick(req).Authorize(req, access);
  }
  void Finish(const api::Request& req, api::Response& res) const override {
    Pick(req).Finish(req, res);
  }

 private:
  api::RouteGate& Pick(const api::Request& req) const {
    return req.Header("authorization") ? keyed_ : open_;
  }
  api::RouteGate& open_;
  api::RouteGate& keyed_;
};

app::Settings FuzzSettings(const std::string& db_path) {
  app::SettingsOptions o;
  o.env = std::map<std::string, std::string>{};  // nothing from the process environment
  o.flags["database.path"] = db_path;
  o.flags["database.reader_pool"] = "2";
  o.flags["logging.level"] = "off";
  o.flags["logging.stderr"] = "false";
  o.flags["logging.access_log"] = "false";
  auto s = app::LoadSettings(o);
  if (!s.ok()) Fail("fuzz settings: " + s.status().message());
  return std::move(s).value();
}

}  // namespace

struct World::Impl {
  explicit Impl(const std::string& db_path)
      : settings(FuzzSettings(db_path)),
        sv(Open(settings)),
        rest{*sv->db, *sv->tasks, *sv->workflow, NowTimestamp()},
        engine_ctx{*sv->workflow, *sv->jobs, *sv->sessions, engine::StandardJobKinds()},
        health(*sv->db, *sv->embedder),
        metrics(*sv->db),
        access(*sv->db),
        open_guard(api::GuardOptions{}, nullptr),
        keyed_guard(KeyedOptions(), &access),
        gate(open_guard, keyed_guard),
        hook_handler(hooks::HookServices{*sv->tasks, *sv->memory, *sv->sessions, *sv->db}),
        tool_services{*sv->tasks, *sv->memory, *sv->workflow},
        tools(mcp::DevStreamTools(tool_services)),
        mcp_server(tools, McpInfo()),
        mcp_http(mcp_server, McpOptions(&access)) {
    if (Status st = sv->memory->LoadIndex(); !st.ok()) Fail("LoadIndex: " + st.message());
    api::RegisterRestRoutes(router, rest);
    api::RegisterMemoryRoutes(router, *sv->memory);
    api::RegisterEngineRoutes(router, engine_ctx);
    health.SetReady();
    api::RegisterHealthRoutes(router, health);
    sv->memory->SetSearchListener(
        [this](const memory::SearchResult& r) { metrics.ObserveSearch(r); });
    api::RegisterMetricsRoute(router, metrics, settings.metrics_allowed);
    api::RegisterHookRoutes(router, hook_handler);
    mcp_http.Register(router);
    router.SetGate(&gate);
    MakeFixtures();
  }

  static std::unique_ptr<app::Services> Open(const app::Settings& s) {
    auto opened = app::OpenServices(s);
    if (!opened.ok()) Fail("OpenServices: " + opened.status().message());
    return std::move(opened).value();
  }
  static api::GuardOptions KeyedOptions() {
    api::GuardOptions g;
    g.rate_per_minute = 1'000'000;  // the bucket code runs; inputs never run dry
    g.burst = 1'000'000;
    g.cors_origins = {"https://app.example"};
    g.trusted_proxies = {"127.0.0.1"};
    return g;
  }
  static mcp::ServerInfo McpInfo() {
    mcp::ServerInfo info;
    info.version = "fuzz";
    info.instructions = "DevStream under fuzzing.";
    return info;
  }
  static mcp::HttpTransportOptions McpOptions(api::AccessControl* access) {
    mcp::HttpTransportOptions o;
    o.allowed_origins = {"https://app.example"};
    o.max_sessions = 64;
    o.access = access;
    return o;
  }

  // POSTs `body` to `path` and returns the answer's "id" (aborts on failure).
  std::string Create(const std::string& path, const std::string& body) {
    std::string id = TryCreate(path, body);
    if (id.empty()) Fail("fixture " + path + " could not be created");
    return id;
  }
  // The same, "" on failure (inputs may have changed the fixtures).
  std::string TryCreate(const std::string& path, const std::string& body) {
    api::Request req;
    req.method = "POST";
    req.target = Substitute(path);
    req.headers = {{"content-type", "application/json"}};
    req.body = Substitute(body);
    api::Response res = Serve(req);
    auto v = ParseJson(res.body);
    const boost::json::value* id =
        v.ok() && v->is_object() ? v->as_object().if_contains("id") : nullptr;
    if (res.status >= 300 || !id || !(id->is_string() || id->is_int64())) return "";
    return id->is_string() ? std::string(id->as_string()) : std::to_string(id->as_int64());
  }

  void MakeFixtures() {
    fx.project_name = "fuzzproj";
    fx.project = Create("/api/v1/projects", R"({"name":"fuzzproj","root_path":"/tmp/fuzzproj"})");
    fx.plan = Create("/api/v1/plans",
                     R"({"project":"fuzzproj","title":"Fuzz plan","objectives":["a","b"]})");
    fx.phase = Create("/api/v1/plans/$PLAN/phases", R"({"name":"Phase one"})");
    fx.task = Create("/api/v1/phases/$PHASE/tasks",
                     R"({"title":"First task","task_type":"coding","priority":5})");
    fx.task2 =
        Create("/api/v1/phases/$PHASE/tasks", R"({"title":"Second task","depends_on":["$TASK"]})");
    fx.memory =
        Create("/api/v1/memories?project=fuzzproj",
               R"({"content":"The parser handles quoted \"FTS5\" terms and paths like )"
               R"(src/memory/fts_query.cpp","content_type":"learning","keywords":["fts"]})");
    fx.job = Create("/api/v1/jobs", R"({"kind":"rollup"})");
    fx.session = Create("/api/v1/sessions?project=fuzzproj", R"({"agent":"fuzzer"})");
    ApiKeyStore keys(*sv->db);
    auto key = [&](const char* name, uint8_t scopes, std::optional<std::string> project) {
      auto k = keys.Create(name, scopes, project);
      if (!k.ok()) Fail("api key: " + k.status().message());
      return k->token;
    };
    key_admin = key("admin", kScopeRead | kScopeWrite | kScopeAdmin, std::nullopt);
    key_write = key("writer", kScopeRead | kScopeWrite, std::nullopt);
    key_read = key("reader", kScopeRead, std::nullopt);
    key_bound = key("bound", kScopeRead | kScopeWrite, std::string("fuzzproj"));
  }

  std::string Substitute(std::string text) {
    if (text.find('$') == std::string::npos) return text;
    // Fresh resources for inputs that delete or archive what they name, so
    // the fixtures stay for the inputs after them.
    const std::pair<std::string_view, std::pair<const char*, const char*>> fresh[] = {
        {"$NEW_PLAN", {"/api/v1/plans", R"({"project":"fuzzproj","title":"victim"})"}},
        {"$NEW_PHASE", {"/api/v1/plans/$PLAN/phases", R"({"name":"victim"})"}},
        {"$NEW_TASK", {"/api/v1/phases/$PHASE/tasks", R"({"title":"victim"})"}},
        {"$NEW_MEMORY",
         {"/api/v1/memories?project=fuzzproj",
          R"({"content":"victim #","content_type":"context"})"}},
    };
    for (const auto& [name, how] : fresh) {
      for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at)) {
        std::string body = how.second;
        if (size_t hash = body.find('#'); hash != std::string::npos) {
          body.replace(hash, 1, std::to_string(++fresh_count));
        }
        std::string id = TryCreate(how.first, body);
        text.replace(at, name.size(), id.empty() ? "missing" : id);
      }
    }
    const std::pair<std::string_view, const std::string*> names[] = {
        {"$PROJECT_NAME", &fx.project_name},
        {"$PROJECT", &fx.project},
        {"$PLAN", &fx.plan},
        {"$PHASE", &fx.phase},
        {"$TASK2", &fx.task2},
        {"$TASK", &fx.task},
        {"$MEMORY", &fx.memory},
        {"$JOB", &fx.job},
        {"$SESSION", &fx.session},
        {"$KEY_ADMIN", &key_admin},
        {"$KEY_WRITE", &key_write},
        {"$KEY_READ", &key_read},
        {"$KEY_BOUND", &key_bound},
    };
    for (const auto& [name, value] : names) {
      for (size_t at = text.find(name); at != std::string::npos;
           at = text.find(name, at + value->size())) {
        text.replace(at, name.size(), *value);
      }
    }
    return text;
  }

  api::Response Serve(api::Request& req) {
    req.request_id = api::ChooseRequestId(req.Header("x-request-id"));
    if (req.remote_addr.empty()) req.remote_addr = "127.0.0.1";
    if (Status st = api::ParseTarget(req); !st.ok()) return api::ProblemResponse(st, req);
    return router.Dispatch(req);
  }

  app::Settings settings;
  std::unique_ptr<app::Services> sv;
  api::Router router;
  api::RestContext rest;
  api::EngineContext engine_ctx;
  api::HealthCheck health;
  api::Metrics metrics;
  api::AccessControl access;
  api::RequestGuard open_guard;
  api::RequestGuard keyed_guard;
  SplitGate gate;
  hooks::HookHandler hook_handler;
  mcp::ToolServices tool_services;
  mcp::ToolRegistry tools;
  mcp::McpServer mcp_server;
  mcp::HttpTransport mcp_http;
  Fixtures fx;
  std::string key_admin, key_write, key_read, key_bound;
  uint64_t fresh_count = 0;
};

// The current world; replaced every kResetEvery inputs.
static World* g_world = nullptr;

World& World::Get() {
  static int uses = 0;
  static int generation = 0;
  if (!g_world || ++uses >= kResetEvery) {
    if (!g_world) {
      LogOptions off;
      off.level = "off";
      off.to_stderr = false;
      if (!ConfigureLogging(off).ok()) Fail("ConfigureLogging failed");
      // Before static destructors run: close the database, then remove it.
      std::atexit([] {
        delete g_world;
        g_world = nullptr;
        std::error_code ec;
        fs::remove_all(TempRoot(), ec);
      });
    }
    uses = 0;
    delete g_world;
    g_world = nullptr;
    std::error_code ec;
    std::string dir = TempRoot() + "/w" + std::to_string(generation++ % 2);
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    auto* world = new World();
    world->impl_ = std::make_unique<Impl>(dir + "/fuzz.db");
    g_world = world;
  }
  return *g_world;
}

World::World() = default;
World::~World() = default;

api::Router& World::router() {
  return impl_->router;
}
const mcp::McpServer& World::mcp() const {
  return impl_->mcp_server;
}
hooks::HookHandler& World::hooks() {
  return impl_->hook_handler;
}
const Fixtures& World::fixtures() const {
  return impl_->fx;
}
std::string World::Substitute(std::string text) {
  return impl_->Substitute(std::move(text));
}
api::Response World::Serve(api::Request& req) {
  return impl_->Serve(req);
}

void Fail(std::string_view what) {
  std::fprintf(stderr, "fuzz invariant violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

namespace {

std::string Where(const api::Request& req, const api::Response& res) {
  return req.method + " " + req.target + " -> " + std::to_string(res.status) + " " +
         res.content_type + " " + res.body.substr(0, 400);
}

}  // namespace

void CheckResponse(const api::Request& req, const api::Response& res) {
  static const bool verbose = std::getenv("DS_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s\n", Where(req, res).substr(0, 300).c_str());
  if (res.status < 200 || res.status > 599) Fail("status out of range: " + Where(req, res));
  if ((res.status == 204 || res.status == 304) && !res.body.empty()) {
    Fail("body on a bodiless status: " + Where(req, res));
  }
  for (const auto& [name, value] : res.headers) {
    if (!api::IsSendableHeader(name, value)) {
      Fail("response header not sendable: " + name + ": " + Where(req, res));
    }
  }
  const bool json = res.content_type.find("json") != std::string::npos;
  std::optional<boost::json::value> body;
  if (json && !res.body.empty()) {
    boost::system::error_code ec;
    body = boost::json::parse(res.body, ec);
    if (ec) Fail("JSON body does not parse: " + Where(req, res));
  }
  if (res.status < 400) return;
  const bool mcp = req.route == "/mcp";
  if (mcp && res.content_type == "application/json") {
    const auto* o = body ? body->if_object() : nullptr;
    const auto* err = o ? o->if_contains("error") : nullptr;
    if (!err || !err->is_object() || !err->as_object().contains("code") ||
        !o->contains("jsonrpc")) {
      Fail("/mcp error is not a JSON-RPC error: " + Where(req, res));
    }
    return;
  }
  if (res.content_type != "application/problem+json") {
    Fail("error without problem+json: " + Where(req, res));
  }
  const auto* o = body ? body->if_object() : nullptr;
  const auto* st = o ? o->if_contains("status") : nullptr;
  if (!st || !st->is_int64() || st->as_int64() != res.status || !o->contains("title") ||
      !o->contains("type")) {
    Fail("problem body does not match the status: " + Where(req, res));
  }
}

std::string AsString(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

uint32_t Fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

std::pair<std::string, std::string> SplitFirstLine(const std::string& input) {
  size_t nl = input.find('\n');
  if (nl == std::string::npos) return {input, ""};
  return {input.substr(0, nl), input.substr(nl + 1)};
}

}  // namespace ds::fuzz
