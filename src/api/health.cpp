#include "api/health.h"

#include <sys/statvfs.h>

#include <cmath>
#include <filesystem>

#include "core/clock.h"
#include "engine/worker.h"

namespace ds::api {
namespace {

constexpr auto kProbeEvery = std::chrono::seconds(30);
constexpr int kWriteCheckTimeoutMs = 1000;
constexpr uint64_t kDiskDegradedBytes = 1ULL << 30;
constexpr uint64_t kDiskUnhealthyBytes = 100ULL << 20;

class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  json::value Ms() const {
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
                    .count();
    return JsonNumber(std::round(ms * 1000) / 1000);
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

json::object Component(const char* status, const Timer& t) {
  return json::object{{"status", status}, {"response_time_ms", t.Ms()}};
}

int Rank(std::string_view status) {
  return status == "unhealthy" ? 2 : status == "degraded" ? 1 : 0;
}

}  // namespace

HealthCheck::HealthCheck(Database& db, memory::Embedder& embedder) : db_(db), embedder_(embedder) {}

json::object HealthCheck::CheckDatabase() {
  Timer t;
  Status st = db_.Read([](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM schema_migrations"));
    return s.Step().status();
  });
  // An empty write transaction on a connection of its own (not queued behind
  // this process's writer) takes the write lock: a read-only file, or a lock
  // held for over a second, shows here.
  if (st.ok()) {
    Connection::Options o;
    o.busy_timeout_ms = kWriteCheckTimeoutMs;
    auto probe = Connection::Open(db_.path(), o);
    st = probe.ok() ? (*probe)->Exec("BEGIN IMMEDIATE; ROLLBACK") : probe.status();
  }
  json::object out = Component(st.ok() ? "healthy" : "unhealthy", t);
  if (!st.ok()) out["error"] = st.message();
  return out;
}

json::object HealthCheck::CheckMemory() {
  Timer t;
  std::string error;
  {
    std::lock_guard<std::mutex> lock(probe_mu_);
    auto now = std::chrono::steady_clock::now();
    if (probed_at_ == std::chrono::steady_clock::time_point{} || now - probed_at_ > kProbeEvery) {
      // A text no cache holds, so the provider itself is asked.
      auto v = embedder_.Embed({"devstream health probe " + std::to_string(NowMillis())});
      probe_error_ = v.ok() ? "" : v.status().message();
      probed_at_ = now;
    }
    error = probe_error_;
  }
  const char* status = !ready_ ? "degraded" : error.empty() ? "healthy" : "degraded";
  json::object out = Component(status, t);
  out["index_loaded"] = ready_.load();
  out["model"] = embedder_.model();
  if (!ready_) {
    out["error"] = "the vector index is still loading";
  } else if (!error.empty()) {
    out["error"] = "embedder failing (search answers by keyword only): " + error;
  }
  return out;
}

json::object HealthCheck::CheckTasks() {
  Timer t;
  auto live = engine::LiveWorkers(db_, engine::kWorkerFreshMs);
  json::object out = Component(live.ok() && *live > 0 ? "healthy" : "degraded", t);
  out["workers"] = live.ok() ? *live : 0;
  if (!live.ok()) {
    out["error"] = live.status().message();
  } else if (*live == 0) {
    out["error"] = "no task-engine worker has sent a heartbeat in the last " +
                   std::to_string(engine::kWorkerFreshMs / 1000) + " s";
  }
  return out;
}

json::object HealthCheck::CheckDisk() {
  Timer t;
  std::string dir = std::filesystem::path(db_.path()).parent_path().string();
  if (dir.empty()) dir = ".";
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) {
    json::object out = Component("unhealthy", t);
    out["error"] = "cannot stat " + dir;
    return out;
  }
  uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  uint64_t total = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  double free_pct =
      total ? 100.0 * static_cast<double>(free_bytes) / static_cast<double>(total) : 0;
  const char* status = free_bytes < kDiskUnhealthyBytes                      ? "unhealthy"
                       : (free_bytes < kDiskDegradedBytes || free_pct < 5.0) ? "degraded"
                                                                             : "healthy";
  json::object out = Component(status, t);
  out["free_bytes"] = free_bytes;
  out["free_percent"] = JsonNumber(std::round(free_pct * 10) / 10);
  if (std::string_view(status) != "healthy") {
    out["error"] = "little free space where the database lives (" + dir + ")";
  }
  return out;
}

std::pair<json::object, int> HealthCheck::Check() {
  json::object components{{"database", CheckDatabase()},
                          {"memory", CheckMemory()},
                          {"tasks", CheckTasks()},
                          {"disk", CheckDisk()}};
  int worst = 0;
  for (const auto& [name, c] : components) {
    int r = Rank(c.as_object().at("status").as_string());
    // Only the database and the disk can make the whole unhealthy.
    if (name != "database" && name != "disk") r = std::min(r, 1);
    worst = std::max(worst, r);
  }
  const char* overall = worst == 2 ? "unhealthy" : worst == 1 ? "degraded" : "healthy";
  json::object body{{"status", overall},
                    {"timestamp", NowTimestamp()},
                    {"version", DEVSTREAM_VERSION},
                    {"components", std::move(components)}};
  return {std::move(body), worst == 2 ? 503 : 200};
}

void RegisterHealthRoutes(Router& router, HealthCheck& health) {
  router.Add(
      "GET", "/health",
      [&health](Request&) -> Response {
        auto [body, status] = health.Check();
        return JsonResponse(status, body);
      },
      Access::kPublic);
  router.Add(
      "GET", "/health/live",
      [](Request&) -> Response {
        return JsonResponse(200, json::object{{"status", "alive"}});
      },
      Access::kPublic);
  router.Add(
      "GET", "/health/ready",
      [&health](Request&) -> Response {
        bool ready = health.ready();
        return JsonResponse(ready ? 200 : 503,
                            json::object{{"status", ready ? "ready" : "not_ready"}});
      },
      Access::kPublic);
}

}  // namespace ds::api
