#include "engine/worker.h"

#include <unistd.h>

#include <chrono>
#include <exception>

#include "core/clock.h"
#include "core/id.h"
#include "core/log.h"

namespace ds::engine {
namespace {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

bool IsPermanent(const Status& st) {
  return st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kMalformed ||
         st.code() == StatusCode::kNotFound;
}

}  // namespace

Worker::Worker(Database& db, JobQueue& queue, WorkerOptions options)
    : db_(db), queue_(queue), options_(std::move(options)), id_(NewId("wkr")) {}

Worker::~Worker() {
  Stop();
}

void Worker::Register(const std::string& kind, JobHandler handler) {
  handlers_[kind] = std::move(handler);
}

std::vector<std::string> Worker::kinds() const {
  std::vector<std::string> out;
  for (const auto& [k, h] : handlers_) out.push_back(k);
  return out;
}

Status Worker::RegisterRow() {
  return db_.Write([&](Connection& c) -> Status {
    std::string now = NowTimestamp();
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT OR REPLACE INTO workers(id, host, pid, mode, "
                                          "started_at, heartbeat_at) VALUES(?,?,?,?,?,?)"));
    s.Bind(1, id_).Bind(2, HostName()).Bind(3, static_cast<int64_t>(getpid()));
    s.Bind(4, options_.mode).Bind(5, now).Bind(6, now);
    return s.Run();
  });
}

void Worker::DeregisterRow() {
  Status st = db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM workers WHERE id = ?"));
    s.Bind(1, id_);
    return s.Run();
  });
  if (!st.ok()) LogWarn("worker deregister failed", {{"worker_id", id_}, {"error", st.message()}});
}

Status Worker::Start() {
  DS_RETURN_IF_ERROR(RegisterRow());
  stopping_ = false;
  running_ = true;
  loop_ = std::thread([this] { Loop(); });
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return Status::Ok();
}

void Worker::Stop() {
  if (!running_) return;
  stopping_ = true;
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  running_ = false;
  DeregisterRow();
}

void Worker::SetCurrent(const std::optional<std::string>& job_id, bool finished) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_job_ = job_id;
  }
  Status st = db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("UPDATE workers SET current_job = ?2, heartbeat_at = ?3,"
                                          " jobs_done = jobs_done + ?4 WHERE id = ?1"));
    s.Bind(1, id_).Bind(2, job_id).Bind(3, NowTimestamp()).Bind(4, finished ? 1 : 0);
    return s.Run();
  });
  if (!st.ok())
    LogWarn("worker state update failed", {{"worker_id", id_}, {"error", st.message()}});
}

Result<bool> Worker::RunOne() {
  if (handlers_.empty()) return false;  // an empty kind list would claim every kind
  DS_ASSIGN_OR_RETURN(auto claimed, queue_.Claim(id_, options_.lease_ms, kinds()));
  if (!claimed) return false;
  const Job& job = *claimed;
  SetCurrent(job.id, false);
  json::object payload;
  Status st;
  if (auto parsed = ParseJson(job.payload); parsed.ok() && parsed->is_object()) {
    payload = parsed->as_object();
  } else {
    st = Status::InvalidArgument("job payload is not a JSON object");
  }
  bool given_back = false;
  if (st.ok()) {
    JobContext ctx{job, std::move(payload), stopping_};
    auto it = handlers_.find(job.kind);
    try {
      st = it->second(ctx);
    } catch (const std::exception& e) {
      st = Status::Internal(std::string("handler threw: ") + e.what());
    } catch (...) {
      st = Status::Internal("handler threw a non-standard exception");
    }
    given_back = ctx.given_back && !st.ok();
  }
  if (st.ok()) {
    Status done = queue_.Complete(job.id, id_);
    if (!done.ok()) {
      LogWarn("job finished but its completion was not recorded",
              {{"job_id", job.id}, {"kind", job.kind}, {"error", done.message()}});
    }
  } else if (given_back) {
    if (Status r = queue_.Release(job.id, id_); !r.ok()) {
      LogWarn("releasing a job failed", {{"job_id", job.id}, {"error", r.message()}});
    }
  } else {
    auto failed = queue_.Fail(job.id, id_, st.message(), IsPermanent(st));
    if (failed.ok()) {
      LogWarn("job attempt failed", {{"job_id", job.id},
                                     {"kind", job.kind},
                                     {"attempt", job.attempts},
                                     {"error", st.message()},
                                     {"state", failed->state}});
    }
  }
  SetCurrent(std::nullopt, true);
  return true;
}

void Worker::Loop() {
  auto last_tick = std::chrono::steady_clock::time_point{};
  while (!stopping_) {
    if (scheduler_ && std::chrono::steady_clock::now() - last_tick > std::chrono::seconds(1)) {
      last_tick = std::chrono::steady_clock::now();
      if (auto t = scheduler_->Tick(); !t.ok()) {
        LogWarn("scheduler tick failed", {{"error", t.status().message()}});
      }
    }
    auto ran = RunOne();
    if (!ran.ok()) {
      LogWarn("worker could not claim a job", {{"error", ran.status().message()}});
    }
    if (ran.ok() && *ran) continue;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                 [&] { return stopping_.load(); });
  }
}

void Worker::HeartbeatLoop() {
  while (!stopping_) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(options_.heartbeat_ms),
                   [&] { return stopping_.load(); });
    }
    std::optional<std::string> job;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job = current_job_;
    }
    Status st = db_.Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("UPDATE workers SET heartbeat_at = ? WHERE id = ?"));
      s.Bind(1, NowTimestamp()).Bind(2, id_);
      DS_RETURN_IF_ERROR(s.Run());
      if (c.Changes() == 0) {
        // Someone removed our row (an operator cleaning up): register again.
        DS_ASSIGN_OR_RETURN(Stmt r, c.Prepare("INSERT INTO workers(id, host, pid, mode, "
                                              "started_at, heartbeat_at) VALUES(?,?,?,?,?,?)"));
        std::string now = NowTimestamp();
        r.Bind(1, id_).Bind(2, HostName()).Bind(3, static_cast<int64_t>(getpid()));
        r.Bind(4, options_.mode).Bind(5, now).Bind(6, now);
        DS_RETURN_IF_ERROR(r.Run());
      }
      return Status::Ok();
    });
    if (!st.ok()) LogWarn("worker heartbeat failed", {{"worker_id", id_}, {"error", st.message()}});
    if (job) {
      if (Status e = queue_.Extend(*job, id_, options_.lease_ms); !e.ok()) {
        LogWarn("job lease renewal failed", {{"job_id", *job}, {"error", e.message()}});
      }
    }
  }
}

Result<int> Worker::RunOnce(int max_jobs) {
  DS_RETURN_IF_ERROR(RegisterRow());
  int ran = 0;
  Status st;
  while (ran < max_jobs) {
    auto one = RunOne();
    if (!one.ok()) {
      st = one.status();
      break;
    }
    if (!*one) break;
    ++ran;
  }
  DeregisterRow();
  if (!st.ok()) return st;
  return ran;
}

Result<int64_t> PruneDeadWorkers(Database& db, int64_t silent_ms) {
  int64_t n = 0;
  DS_RETURN_IF_ERROR(db.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM workers WHERE heartbeat_at < ?"));
    s.Bind(1, FormatTimestamp(NowMillis() - silent_ms));
    DS_RETURN_IF_ERROR(s.Run());
    n = c.Changes();
    return Status::Ok();
  }));
  return n;
}

Result<int64_t> LiveWorkers(Database& db, int64_t fresh_ms) {
  int64_t n = 0;
  DS_RETURN_IF_ERROR(db.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM workers WHERE heartbeat_at >= ?"));
    s.Bind(1, FormatTimestamp(NowMillis() - fresh_ms));
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    (void)row;
    n = s.Int(0);
    return Status::Ok();
  }));
  return n;
}

}  // namespace ds::engine
