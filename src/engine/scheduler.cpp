#include "engine/scheduler.h"

#include <algorithm>
#include <charconv>

#include "core/clock.h"

namespace ds::engine {

Result<std::vector<Schedule>> DefaultSchedules(const std::string& spec) {
  std::vector<Schedule> out = {{"lease_reaper", 15'000, true, 3},
                               {"rollup", 600'000, false, 3},
                               {"retention", 86'400'000, false, 3},
                               {"backup", 86'400'000, false, 3}};
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string kind = item.substr(0, eq);
    auto it =
        std::find_if(out.begin(), out.end(), [&](const Schedule& s) { return s.kind == kind; });
    int64_t seconds = -1;
    if (eq != std::string::npos) {
      const char* first = item.data() + eq + 1;
      const char* last = item.data() + item.size();
      auto [p, ec] = std::from_chars(first, last, seconds);
      if (ec != std::errc() || p != last) seconds = -1;
    }
    if (it == out.end() || seconds < 0 || seconds > 365LL * 86400) {
      return Status::InvalidArgument(
                 "DEVSTREAM_SCHEDULE item \"" + item +
                 "\" is not KIND=SECONDS with KIND one of lease_reaper, rollup, retention, "
                 "backup and SECONDS 0 (off) .. 31536000")
          .WithDetail("field", "DEVSTREAM_SCHEDULE");
    }
    it->interval_ms = seconds * 1000;
  }
  return out;
}

Scheduler::Scheduler(Database& db, std::vector<Schedule> schedules)
    : db_(db), schedules_(std::move(schedules)) {}

Result<std::vector<std::string>> Scheduler::Tick() {
  std::vector<std::string> created;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    created.clear();
    int64_t now_ms = NowMillis();
    std::string now = FormatTimestamp(now_ms);
    for (const auto& s : schedules_) {
      if (s.interval_ms <= 0) continue;
      DS_ASSIGN_OR_RETURN(Stmt q, c.Prepare("SELECT next_run_at, interval_ms FROM job_schedules "
                                            "WHERE kind = ?"));
      q.Bind(1, s.kind);
      DS_ASSIGN_OR_RETURN(bool row, q.Step());
      std::string next = FormatTimestamp(now_ms + s.interval_ms);
      if (!row) {
        if (!s.run_at_start) {
          DS_ASSIGN_OR_RETURN(Stmt ins, c.Prepare("INSERT INTO job_schedules(kind, interval_ms, "
                                                  "next_run_at, updated_at) VALUES(?,?,?,?)"));
          ins.Bind(1, s.kind).Bind(2, s.interval_ms).Bind(3, next).Bind(4, now);
          DS_RETURN_IF_ERROR(ins.Run());
          continue;
        }
      } else {
        std::string due = q.Text(0);
        int64_t stored_interval = q.Int(1);
        if (stored_interval != s.interval_ms) {
          // A shorter interval takes effect now rather than after the old one.
          std::string capped = std::min(due, next);
          DS_ASSIGN_OR_RETURN(Stmt u,
                              c.Prepare("UPDATE job_schedules SET interval_ms = ?2, "
                                        "next_run_at = ?3, updated_at = ?4 WHERE kind = ?1"));
          u.Bind(1, s.kind).Bind(2, s.interval_ms).Bind(3, capped).Bind(4, now);
          DS_RETURN_IF_ERROR(u.Run());
          due = capped;
        }
        if (due > now) continue;
      }
      EnqueueOptions opts;
      opts.dedup_key = "schedule:" + s.kind;
      opts.max_attempts = s.max_attempts;
      DS_ASSIGN_OR_RETURN(auto job, JobQueue::EnqueueIn(c, s.kind, json::object{}, opts));
      if (!job.deduplicated) created.push_back(job.job.id);
      DS_ASSIGN_OR_RETURN(
          Stmt up, c.Prepare("INSERT INTO job_schedules(kind, interval_ms, next_run_at, "
                             "last_job_id, updated_at) VALUES(?1,?2,?3,?4,?5) ON CONFLICT(kind) DO "
                             "UPDATE SET interval_ms = ?2, next_run_at = ?3, last_job_id = ?4, "
                             "updated_at = ?5"));
      up.Bind(1, s.kind).Bind(2, s.interval_ms).Bind(3, next).Bind(4, job.job.id).Bind(5, now);
      DS_RETURN_IF_ERROR(up.Run());
    }
    return Status::Ok();
  }));
  return created;
}

}  // namespace ds::engine
