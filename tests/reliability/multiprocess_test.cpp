// Multi-process: two API server processes and two worker processes on one
// SQLite file under the mixed workload (for DEVSTREAM_SOAK_SECONDS, default
// 12 here) while sessions are ended (each queues a session_summary job) and
// named backup jobs are queued. Asserts: no lock contention surfaces (no 5xx,
// no "database is locked" in any response body or process log), claims are
// exclusive (no task claimed twice; one audited claim per task, by its
// claimer), every job ran exactly once (done after one attempt, one summary
// memory per session, one "backup written" line per backup across both
// workers' logs), no acknowledged write is lost, and the store is intact.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <set>

#include "mixed_workload.h"

namespace ds::rtest {
namespace {

size_t CountOccurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(MultiprocessTest, TwoServersTwoWorkersMixedWorkloadExclusiveClaimsExactlyOnceJobs) {
  const double seconds = static_cast<double>(std::max(4L, EnvLong("DEVSTREAM_SOAK_SECONDS", 12)));
  const std::string dir = TempDir();
  DirCleanup cleanup{dir};
  const std::string db = dir + "/mp.db";
  const EnvVars env = {{"DEVSTREAM_WORKER_POLL_MS", "50"},
                       {"DEVSTREAM_SCHEDULE", "lease_reaper=2,rollup=3,retention=0,backup=0"},
                       {"DEVSTREAM_LOG_LEVEL", "info"}};
  Server a(db, dir + "/server-a.log", {"--mode", "api"}, env);
  ASSERT_TRUE(a.Start()) << ReadText(dir + "/server-a.log");
  Server b(db, dir + "/server-b.log", {"--mode", "api"}, env);
  ASSERT_TRUE(b.Start()) << ReadText(dir + "/server-b.log");
  BackgroundProcess w1({"worker", "--db", db}, dir + "/worker-1.log", env);
  ASSERT_TRUE(w1.Start("DevStream worker")) << w1.Stderr();
  BackgroundProcess w2({"worker", "--db", db}, dir + "/worker-2.log", env);
  ASSERT_TRUE(w2.Start("DevStream worker")) << w2.Stderr();
  const int ports[2] = {a.port(), b.port()};

  auto plan = Http(a.port(), "POST", "/api/v1/plans", R"({"title":"Multi-process plan"})");
  ASSERT_EQ(plan.status, 201) << plan.body;
  auto phase = Http(b.port(), "POST", "/api/v1/plans/" + IdOf(plan.Json()) + "/phases",
                    R"({"name":"Shared"})");
  ASSERT_EQ(phase.status, 201) << phase.body;
  ASSERT_EQ(Http(a.port(), "POST", "/api/v1/projects", R"({"name":"mp-jobs"})").status, 201);

  WorkloadConfig cfg;
  cfg.ports = {a.port(), b.port()};
  cfg.plan_id = IdOf(plan.Json());
  cfg.phase_id = IdOf(phase.Json());
  cfg.threads = 10;
  cfg.agent_prefix = "mp";
  MixedWorkload work(cfg);
  work.Seed(100, 150);

  // Jobs with an observable effect, queued through both servers during the run.
  constexpr int kSessions = 16, kBackups = 6;
  std::vector<std::string> sessions, backup_jobs, job_problems;
  std::thread jobs_thread([&] {
    const auto t0 = Clock::now();
    const double step_ms = seconds * 800.0 / (kSessions + kBackups);
    for (int i = 0; i < kSessions + kBackups; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(static_cast<int>(i * step_ms)));
      const int port = ports[i % 2];
      const bool backup = (i % 4 == 3 || static_cast<int>(sessions.size()) >= kSessions) &&
                          static_cast<int>(backup_jobs.size()) < kBackups;
      if (!backup) {
        if (static_cast<int>(sessions.size()) >= kSessions) continue;
        auto s = Http(port, "POST", "/api/v1/sessions",
                      R"({"project":"mp-jobs","agent":"mp","external_id":"mp-)" +
                          std::to_string(i) + R"("})");
        auto e = Http(ports[(i + 1) % 2], "POST",
                      "/api/v1/sessions/" + IdOf(s.Json()) + "/end?project=mp-jobs", "");
        if (s.status != 201 || e.status != 200 || LooksLikeLockTrouble(s.body + e.body)) {
          job_problems.push_back("session " + std::to_string(i) + ": " + std::to_string(s.status) +
                                 " " + s.body + " / " + std::to_string(e.status) + " " + e.body);
        } else {
          sessions.push_back(IdOf(s.Json()));
        }
      } else {
        std::string name = "mp-" + std::to_string(backup_jobs.size()) + ".db";
        auto j = Http(port, "POST", "/api/v1/jobs",
                      R"({"kind":"backup","payload":{"name":")" + name + R"("}})");
        if (j.status != 201 || IdOf(j.Json()).empty()) {
          job_problems.push_back("backup job: " + std::to_string(j.status) + " " + j.body);
        } else {
          backup_jobs.push_back(IdOf(j.Json()));
        }
      }
    }
  });
  work.Run(seconds);
  jobs_thread.join();
  work.latencies().Report(std::cout, "multi-process, 2 servers + 2 workers, 10 clients",
                          work.elapsed_s());

  for (const auto& p : job_problems) ADD_FAILURE() << p;
  for (const auto& p : work.problems()) ADD_FAILURE() << p;
  EXPECT_EQ(work.server_errors(), 0) << "5xx answers";
  EXPECT_EQ(work.dropped(), 0) << "connections dropped without an answer";
  EXPECT_EQ(work.lock_texts(), 0) << "lock contention in a response body";
  EXPECT_EQ(static_cast<int>(sessions.size()), kSessions);
  EXPECT_EQ(static_cast<int>(backup_jobs.size()), kBackups);

  // ---- claims exclusive ----
  std::map<std::string, std::string> claimer;
  int twice = 0;
  for (const auto& c : work.claims()) {
    if (!claimer.emplace(c.task, c.agent).second && ++twice <= 5) {
      ADD_FAILURE() << "task " << c.task << " claimed by " << claimer[c.task] << " and " << c.agent;
    }
  }
  EXPECT_EQ(twice, 0);
  EXPECT_GT(claimer.size(), 0u);
  {
    TestDb d(db);
    std::map<std::string, std::vector<std::string>> audit;  // task -> actors of claims
    for (auto& r : d.Rows("SELECT task_id, actor FROM task_events WHERE to_status = 'active'")) {
      if (r.size() == 2) audit[r[0]].push_back(r[1]);
    }
    int mismatches = 0;
    for (const auto& [task, agent] : claimer) {
      if (audit[task] != std::vector<std::string>{agent} && ++mismatches <= 5) {
        ADD_FAILURE() << "task " << task << " audit shows " << audit[task].size()
                      << " claim(s), expected one by " << agent;
      }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(d.Scalar("SELECT count(*) FROM micro_tasks WHERE status = 'active' AND"
                       " lease_owner IS NULL"),
              "0");
  }

  // ---- jobs exactly once ----
  std::string left;
  bool done = WaitUntil(
      [&] {
        left = QueryDatabase(db,
                             "SELECT count(*) FROM jobs WHERE kind IN ('backup','session_summary')"
                             " AND state <> 'done'")[0][0];
        return left == "0";
      },
      std::chrono::milliseconds(90000), std::chrono::milliseconds(200));
  EXPECT_TRUE(done) << left << " job(s) not done";
  const std::string worker_logs = w1.Stderr() + w2.Stderr();
  size_t backups_by[2] = {0, 0};
  {
    TestDb d(db);
    for (const auto& s : sessions) {
      auto jobs = d.Rows(
          "SELECT state, attempts, coalesce(last_error, '') FROM jobs WHERE kind ="
          " 'session_summary' AND"
          " json_extract(payload, '$.session_id') = '" +
          s + "'");
      ASSERT_EQ(jobs.size(), 1u) << "session " << s << ": summary jobs";
      EXPECT_EQ(jobs[0], (std::vector<std::string>{"done", "1", ""})) << "session " << s;
      EXPECT_EQ(d.Scalar("SELECT count(*) FROM semantic_memory WHERE session_id = '" + s +
                         "' AND source = 'engine'"),
                "1")
          << "session " << s << ": summary memories";
      EXPECT_EQ(d.Scalar("SELECT count(*) FROM work_sessions w JOIN semantic_memory m ON m.id ="
                         " w.summary_memory_id WHERE w.id = '" +
                         s + "'"),
                "1");
    }
    for (size_t i = 0; i < backup_jobs.size(); ++i) {
      const std::string& j = backup_jobs[i];
      auto row = d.Rows("SELECT state, attempts, coalesce(last_error, '') FROM jobs WHERE id = '" +
                        j + "'");
      ASSERT_EQ(row.size(), 1u) << j;
      EXPECT_EQ(row[0], (std::vector<std::string>{"done", "1", ""})) << "backup job " << j;
      const std::string path = db + ".backups/mp-" + std::to_string(i) + ".db";
      EXPECT_EQ(CountOccurrences(worker_logs, "backup written to " + path), 1u) << path;
      backups_by[0] += CountOccurrences(w1.Stderr(), "backup written to " + path);
      backups_by[1] += CountOccurrences(w2.Stderr(), "backup written to " + path);
      EXPECT_EQ(QueryDatabase(path, "PRAGMA integrity_check")[0][0], "ok") << path;
    }
    EXPECT_EQ(d.Scalar("SELECT count(*) FROM jobs WHERE state IN ('failed','dead')"), "0");
  }

  for (const auto& p : LostWrites(db, work)) ADD_FAILURE() << "lost write: " << p;
  std::string jobs_by_worker;
  for (auto& r : QueryDatabase(db, "SELECT pid, jobs_done FROM workers ORDER BY pid")) {
    if (r.size() == 2) jobs_by_worker += " pid " + r[0] + ": " + r[1];
  }
  EXPECT_EQ(w1.Stop(15000), 0) << w1.Stderr().substr(0, 3000);
  EXPECT_EQ(w2.Stop(15000), 0) << w2.Stderr().substr(0, 3000);
  EXPECT_EQ(a.Stop(30000), 0);
  EXPECT_EQ(b.Stop(30000), 0);
  for (const auto& p : StoreInvariantProblems(db)) ADD_FAILURE() << p;
  const std::string logs = worker_logs + a.Log() + b.Log();
  EXPECT_FALSE(LooksLikeLockTrouble(logs)) << "lock contention surfaced in a process log";

  size_t completed = 0;
  for (const auto& c : work.claims()) completed += c.completed;
  std::cout << "[ multi-process ] " << work.claims().size() << " claims (" << claimer.size()
            << " distinct tasks, " << completed << " completed), " << work.memories().size()
            << " memories and " << work.tasks().size() << " tasks acknowledged, "
            << work.mcp_calls() << " MCP calls; jobs: " << sessions.size() << " session summaries, "
            << backup_jobs.size() << " backups (worker 1 ran " << backups_by[0] << ", worker 2 ran "
            << backups_by[1] << "); jobs done per worker:" << jobs_by_worker << std::endl;
  if (HasFailure()) cleanup.keep = true;
}

}  // namespace
}  // namespace ds::rtest
