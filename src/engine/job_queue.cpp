#include "engine/job_queue.h"

#include <algorithm>
#include <random>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"
#include "core/signing.h"

namespace ds::engine {
namespace {

constexpr char kJobCols[] =
    "id, kind, payload, state, priority, attempts, max_attempts, run_at, lease_owner, "
    "lease_expires_at, last_error, dedup_key, created_at, updated_at, finished_at";

Job ReadJob(const Stmt& s) {
  Job j;
  j.id = s.Text(0);
  j.kind = s.Text(1);
  j.payload = s.Text(2);
  j.state = s.Text(3);
  j.priority = static_cast<int>(s.Int(4));
  j.attempts = static_cast<int>(s.Int(5));
  j.max_attempts = static_cast<int>(s.Int(6));
  j.run_at = s.Text(7);
  j.lease_owner = s.OptText(8);
  j.lease_expires_at = s.OptText(9);
  j.last_error = s.OptText(10);
  j.dedup_key = s.OptText(11);
  j.created_at = s.Text(12);
  j.updated_at = s.Text(13);
  j.finished_at = s.OptText(14);
  return j;
}

Result<Job> LoadJob(Connection& c, const std::string& id) {
  DS_ASSIGN_OR_RETURN(Stmt s,
                      c.Prepare(std::string("SELECT ") + kJobCols + " FROM jobs WHERE id = ?"));
  s.Bind(1, id);
  DS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("job " + id + " does not exist");
  return ReadJob(s);
}

Result<Job> LoadOwnedRunning(Connection& c, const std::string& id, const std::string& worker) {
  DS_ASSIGN_OR_RETURN(Job j, LoadJob(c, id));
  if (j.state != "running" || j.lease_owner != worker) {
    return Status::Conflict("job " + id + " is " + j.state +
                            (j.lease_owner ? " (leased to " + *j.lease_owner + ")" : "") +
                            ", not running under " + worker + "; its lease was lost");
  }
  return j;
}

Status ValidKind(const std::string& kind) {
  if (kind.empty() || kind.size() > 64 || !std::all_of(kind.begin(), kind.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || ch == '_';
      })) {
    return Status::InvalidArgument("job kind must be 1..64 characters of a-z and _")
        .WithDetail("field", "kind");
  }
  return Status::Ok();
}

}  // namespace

const std::vector<std::string_view>& JobStates() {
  static const std::vector<std::string_view> states = {"queued", "running", "done", "failed",
                                                       "dead"};
  return states;
}

int64_t Backoff::DelayMs(int attempts) const {
  int shift = std::clamp(attempts - 1, 0, 30);
  int64_t delay = std::min<int64_t>(max_ms, base_ms << shift);
  if (delay <= 0) return 0;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return static_cast<int64_t>(static_cast<double>(delay) * jitter(rng));
}

JobQueue::JobQueue(Database& db, Backoff backoff) : db_(db), backoff_(backoff) {}

Result<EnqueueResult> JobQueue::EnqueueIn(Connection& c, const std::string& kind,
                                          const json::object& payload, const EnqueueOptions& o) {
  DS_RETURN_IF_ERROR(ValidKind(kind));
  if (o.max_attempts < 1 || o.max_attempts > 100) {
    return Status::InvalidArgument("max_attempts must be 1..100")
        .WithDetail("field", "max_attempts");
  }
  if (o.dedup_key) {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id FROM jobs WHERE dedup_key = ? AND state IN "
                                          "('queued','running')"));
    s.Bind(1, *o.dedup_key);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      std::string id = s.Text(0);
      DS_ASSIGN_OR_RETURN(Job existing, LoadJob(c, id));
      return EnqueueResult{std::move(existing), true};
    }
  }
  std::string id = NewId("job");
  std::string now = NowTimestamp();
  DS_ASSIGN_OR_RETURN(Stmt ins,
                      c.Prepare("INSERT INTO jobs(id, kind, payload, state, priority, attempts, "
                                "max_attempts, run_at, dedup_key, created_at, updated_at) "
                                "VALUES(?1, ?2, ?3, 'queued', ?4, 0, ?5, ?6, ?7, ?8, ?8)"));
  ins.Bind(1, id).Bind(2, kind).Bind(3, ToJsonString(payload)).Bind(4, o.priority);
  ins.Bind(5, o.max_attempts)
      .Bind(6, FormatTimestamp(NowMillis() + std::max<int64_t>(0, o.delay_ms)));
  ins.Bind(7, o.dedup_key).Bind(8, now);
  DS_RETURN_IF_ERROR(ins.Run());
  DS_ASSIGN_OR_RETURN(Job j, LoadJob(c, id));
  return EnqueueResult{std::move(j), false};
}

Result<EnqueueResult> JobQueue::Enqueue(const std::string& kind, const json::object& payload,
                                        const EnqueueOptions& options) {
  std::optional<EnqueueResult> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(out, EnqueueIn(c, kind, payload, options));
    return Status::Ok();
  }));
  return *out;
}

namespace {
// Running jobs whose lease expired go back to queued, due now; a job whose
// worker died on its last attempt is dead (it may be what kills workers).
Status RequeueExpiredIn(Connection& c, const std::string& now, std::vector<std::string>* ids) {
  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, attempts, max_attempts FROM jobs"
                                        " WHERE state = 'running' AND lease_expires_at < ?"));
  s.Bind(1, now);
  std::vector<std::pair<std::string, bool>> expired;
  for (;;) {
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    expired.emplace_back(s.Text(0), s.Int(1) >= s.Int(2));
  }
  for (const auto& [id, used_up] : expired) {
    DS_ASSIGN_OR_RETURN(
        Stmt u, c.Prepare("UPDATE jobs SET state = ?2, run_at = ?3, lease_owner = NULL,"
                          " lease_expires_at = NULL, updated_at = ?3,"
                          " last_error = 'worker lease expired (worker stopped or crashed)',"
                          " finished_at = CASE WHEN ?2 = 'dead' THEN ?3 ELSE NULL END"
                          " WHERE id = ?1"));
    u.Bind(1, id).Bind(2, used_up ? "dead" : "queued").Bind(3, now);
    DS_RETURN_IF_ERROR(u.Run());
    ids->push_back(id);
  }
  return Status::Ok();
}
}  // namespace

Result<std::optional<Job>> JobQueue::Claim(const std::string& worker, int64_t lease_ms,
                                           const std::vector<std::string>& kinds) {
  std::optional<Job> out;
  json::array kind_list;
  for (const auto& k : kinds) kind_list.emplace_back(k);
  std::string kinds_json = ToJsonString(json::value(kind_list));
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    out.reset();
    std::string now = NowTimestamp();
    // Lost leases first, here and not only in the lease_reaper job: a worker
    // killed while running lease_reaper left it 'running', and its dedup key
    // then kept the scheduler from queuing another, so nothing was ever
    // requeued again.
    std::vector<std::string> requeued;
    DS_RETURN_IF_ERROR(RequeueExpiredIn(c, now, &requeued));
    DS_ASSIGN_OR_RETURN(Stmt s,
                        c.Prepare("SELECT id FROM jobs WHERE state = 'queued' AND run_at <= ?1"
                                  " AND (json_array_length(?2) = 0 OR kind IN (SELECT value FROM "
                                  "json_each(?2)))"
                                  " ORDER BY priority DESC, run_at, id LIMIT 1"));
    s.Bind(1, now).Bind(2, kinds_json);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::Ok();
    std::string id = s.Text(0);
    DS_ASSIGN_OR_RETURN(Stmt u,
                        c.Prepare("UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                                  " lease_owner = ?2, lease_expires_at = ?3, updated_at = ?4"
                                  " WHERE id = ?1 AND state = 'queued'"));
    u.Bind(1, id).Bind(2, worker).Bind(3, FormatTimestamp(NowMillis() + lease_ms)).Bind(4, now);
    DS_RETURN_IF_ERROR(u.Run());
    DS_ASSIGN_OR_RETURN(Job j, LoadJob(c, id));
    out = std::move(j);
    return Status::Ok();
  }));
  return out;
}

Status JobQueue::Extend(const std::string& id, const std::string& worker, int64_t lease_ms) {
  return db_.Write([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadOwnedRunning(c, id, worker).status());
    DS_ASSIGN_OR_RETURN(
        Stmt u, c.Prepare("UPDATE jobs SET lease_expires_at = ?2, updated_at = ?3 WHERE id = ?1"));
    u.Bind(1, id).Bind(2, FormatTimestamp(NowMillis() + lease_ms)).Bind(3, NowTimestamp());
    return u.Run();
  });
}

Status JobQueue::Complete(const std::string& id, const std::string& worker) {
  return db_.Write([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadOwnedRunning(c, id, worker).status());
    DS_ASSIGN_OR_RETURN(Stmt u,
                        c.Prepare("UPDATE jobs SET state = 'done', lease_owner = NULL,"
                                  " lease_expires_at = NULL, last_error = NULL, updated_at = ?2,"
                                  " finished_at = ?2 WHERE id = ?1"));
    u.Bind(1, id).Bind(2, NowTimestamp());
    return u.Run();
  });
}

Result<Job> JobQueue::Fail(const std::string& id, const std::string& worker,
                           const std::string& error, bool permanent) {
  std::optional<Job> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Job j, LoadOwnedRunning(c, id, worker));
    std::string state = permanent ? "failed" : j.attempts >= j.max_attempts ? "dead" : "queued";
    int64_t now_ms = NowMillis();
    std::string now = FormatTimestamp(now_ms);
    std::string run_at =
        state == "queued" ? FormatTimestamp(now_ms + backoff_.DelayMs(j.attempts)) : j.run_at;
    DS_ASSIGN_OR_RETURN(Stmt u,
                        c.Prepare("UPDATE jobs SET state = ?2, run_at = ?3, last_error = ?4,"
                                  " lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5,"
                                  " finished_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE ?5 END"
                                  " WHERE id = ?1"));
    u.Bind(1, id).Bind(2, state).Bind(3, run_at).Bind(4, Utf8Prefix(error, 4000)).Bind(5, now);
    DS_RETURN_IF_ERROR(u.Run());
    DS_ASSIGN_OR_RETURN(Job fresh, LoadJob(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return *out;
}

Status JobQueue::Release(const std::string& id, const std::string& worker) {
  return db_.Write([&](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(LoadOwnedRunning(c, id, worker).status());
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE jobs SET state = 'queued', attempts = "
                                          "max(attempts - 1, 0), lease_owner = NULL,"
                                          " lease_expires_at = NULL, run_at = ?2, updated_at = ?2"
                                          " WHERE id = ?1"));
    u.Bind(1, id).Bind(2, NowTimestamp());
    return u.Run();
  });
}

Result<std::vector<std::string>> JobQueue::RequeueExpired() {
  std::vector<std::string> ids;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    ids.clear();
    return RequeueExpiredIn(c, NowTimestamp(), &ids);
  }));
  return ids;
}

Result<Job> JobQueue::Get(const std::string& id) {
  std::optional<Job> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Job j, LoadJob(c, id));
    out = std::move(j);
    return Status::Ok();
  }));
  return *out;
}

Result<JobPage> JobQueue::List(const JobFilter& f) {
  std::string after;
  if (f.cursor && !f.cursor->empty()) {
    auto raw = DecodeCursor(f.cursor);
    if (!raw || raw->rfind("before:", 0) != 0 || raw->size() > 100) {
      return Status::InvalidArgument("cursor is not a cursor this server issued")
          .WithDetail("field", "cursor");
    }
    after = raw->substr(7);
  }
  int limit = std::clamp(f.limit, 1, 500);
  JobPage page;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(
        Stmt s,
        c.Prepare(std::string("SELECT ") + kJobCols +
                  " FROM jobs WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)"
                  " AND (?3 = '' OR id < ?3) ORDER BY id DESC LIMIT ?4"));
    s.Bind(1, f.state).Bind(2, f.kind).Bind(3, after).Bind(4, limit + 1);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.items.push_back(ReadJob(s));
    }
    return Status::Ok();
  }));
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    page.next_cursor = EncodeCursor("before:" + page.items.back().id);
  }
  return page;
}

Result<Job> JobQueue::Retry(const std::string& id) {
  std::optional<Job> out;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Job j, LoadJob(c, id));
    if (j.state != "dead" && j.state != "failed") {
      return Status::Conflict("job " + id + " is " + j.state +
                              "; only dead or failed jobs can be retried")
          .WithDetail("state", json::string(j.state));
    }
    if (j.dedup_key) {
      DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id FROM jobs WHERE dedup_key = ? AND state "
                                            "IN ('queued','running')"));
      s.Bind(1, *j.dedup_key);
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (row) {
        return Status::Conflict("job " + s.Text(0) + " with the same dedup key is already " +
                                "queued or running")
            .WithDetail("job_id", json::string(s.Text(0)));
      }
    }
    std::string now = NowTimestamp();
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE jobs SET state = 'queued', attempts = 0,"
                                          " run_at = ?2, updated_at = ?2, finished_at = NULL"
                                          " WHERE id = ?1"));
    u.Bind(1, id).Bind(2, now);
    DS_RETURN_IF_ERROR(u.Run());
    DS_ASSIGN_OR_RETURN(Job fresh, LoadJob(c, id));
    out = std::move(fresh);
    return Status::Ok();
  }));
  return *out;
}

Result<JobQueue::Counts> JobQueue::Stats() {
  Counts out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT state, count(*) FROM jobs GROUP BY state"));
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      std::string st = s.Text(0);
      int64_t n = s.Int(1);
      if (st == "queued") out.queued = n;
      if (st == "running") out.running = n;
      if (st == "done") out.done = n;
      if (st == "failed") out.failed = n;
      if (st == "dead") out.dead = n;
    }
    DS_ASSIGN_OR_RETURN(Stmt o, c.Prepare("SELECT min(run_at) FROM jobs WHERE state = 'queued'"
                                          " AND run_at <= ?"));
    o.Bind(1, NowTimestamp());
    DS_ASSIGN_OR_RETURN(bool row, o.Step());
    if (row && !o.IsNull(0)) {
      if (auto t = ParseTimestamp(o.Text(0))) {
        out.oldest_queued_age_s = std::max<double>(0, (NowMillis() - *t) / 1000.0);
      }
    }
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> JobQueue::PruneFinished(int64_t older_than_ms) {
  int64_t n = 0;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s,
                        c.Prepare("DELETE FROM jobs WHERE state = 'done' AND finished_at < ?"));
    s.Bind(1, FormatTimestamp(NowMillis() - older_than_ms));
    DS_RETURN_IF_ERROR(s.Run());
    n = c.Changes();
    return Status::Ok();
  }));
  return n;
}

json::object ToJson(const Job& j) {
  json::value payload = json::object{};
  if (auto parsed = ParseJson(j.payload); parsed.ok()) payload = std::move(*parsed);
  return {{"id", j.id},
          {"kind", j.kind},
          {"payload", std::move(payload)},
          {"state", j.state},
          {"priority", j.priority},
          {"attempts", j.attempts},
          {"max_attempts", j.max_attempts},
          {"run_at", j.run_at},
          {"lease_owner", OptionalJson(j.lease_owner)},
          {"lease_expires_at", OptionalJson(j.lease_expires_at)},
          {"last_error", OptionalJson(j.last_error)},
          {"dedup_key", OptionalJson(j.dedup_key)},
          {"created_at", j.created_at},
          {"updated_at", j.updated_at},
          {"finished_at", OptionalJson(j.finished_at)}};
}

}  // namespace ds::engine
