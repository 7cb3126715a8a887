// Crash safety: rounds of a write storm (tasks, claims, transitions,
// memories, sessions and jobs) from client threads against an API server and
// a separate worker process, both killed with SIGKILL at seeded random
// moments; then both restart and the store must hold every write a client
// got a 2xx for (with its content), transitions acknowledged must be
// reflected or superseded only by the lease reaper, PRAGMA integrity_check
// and the FTS5/vector invariants must hold, no task may be active without a
// lease, and every acknowledged job must finish (killed jobs resume).
// DEVSTREAM_CRASH_ROUNDS (default 20) and DEVSTREAM_CRASH_SEED override the
// round count and the seed of the kill moments.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <set>

#include "reliability_util.h"

namespace ds::rtest {
namespace {

constexpr int kWriters = 4;
constexpr int kLeaseSeconds = 2;  // task leases: short, so the reaper runs between rounds

const EnvVars kTiming = {{"DEVSTREAM_JOB_LEASE_MS", "1000"},
                         {"DEVSTREAM_WORKER_HEARTBEAT_MS", "300"},
                         {"DEVSTREAM_WORKER_POLL_MS", "50"},
                         {"DEVSTREAM_SCHEDULE", "lease_reaper=1,rollup=0,retention=0,backup=0"},
                         {"DEVSTREAM_LOG_LEVEL", "warn"}};

struct TaskModel {
  std::string title;
  std::string status;  // the last acknowledged (or, after a check, observed) status
};

struct AckedMemory {
  int64_t id = 0;
  std::string content, token;
  int round = 0;
};

struct AckedTransition {
  std::string task, to;
};

// What one writer thread was told (2xx) and what it sent without an answer.
struct Writer {
  int index = 0;
  std::string agent, plan, phase;
  std::map<std::string, TaskModel> tasks;
  std::vector<AckedMemory> memories;
  std::vector<AckedTransition> transitions;
  std::vector<std::string> jobs, sessions;
  std::vector<std::string> problems;
  // The request in flight when the server died (its outcome is unknown).
  bool inflight_claim = false;
  std::string inflight_complete;  // task id
  // Counts of the current round.
  int acked = 0, unanswered = 0;
  std::vector<std::string> round_tasks;
  std::vector<size_t> round_memories;
};

// One storm round of one writer: random operations until the server stops
// answering (killed) or `stop` is set.
void Storm(Writer& w, int port, int round, uint64_t seed, const std::atomic<bool>& stop) {
  std::mt19937_64 rng(seed);
  w.acked = w.unanswered = 0;
  w.round_tasks.clear();
  w.round_memories.clear();
  w.inflight_claim = false;
  w.inflight_complete.clear();
  auto problem = [&](const std::string& what, const HttpResult& r) {
    if (w.problems.size() < 20) {
      w.problems.push_back(w.agent + " " + what + ": HTTP " + std::to_string(r.status) + " " +
                           r.body.substr(0, 300));
    }
  };
  for (int n = 0; !stop && n < 100000; ++n) {
    const int pick = static_cast<int>(rng() % 100);
    const std::string tag =
        "r" + std::to_string(round) + "w" + std::to_string(w.index) + "n" + std::to_string(n);
    if (pick < 35) {  // a memory
      std::string token = "crashtok" + tag;
      std::string content = "Crash storm memory " + tag + ": " + token +
                            " the lease reaper returns expired claims to pending";
      auto r = Http(port, "POST", "/api/v1/memories",
                    R"({"content":)" + Str(content) + R"(,"content_type":"learning"})");
      if (r.status == 0) {
        ++w.unanswered;
        return;
      }
      if (r.status != 201 || IntIdOf(r.Json()) <= 0) {
        problem("store memory", r);
        continue;
      }
      w.memories.push_back({IntIdOf(r.Json()), content, token, round});
      w.round_memories.push_back(w.memories.size() - 1);
      ++w.acked;
    } else if (pick < 60) {  // a task
      std::string title = "crash task " + tag;
      auto r = Http(port, "POST", "/api/v1/phases/" + w.phase + "/tasks",
                    R"({"title":)" + Str(title) + R"(,"max_retries":100,"estimated_minutes":1})");
      if (r.status == 0) {
        ++w.unanswered;
        return;
      }
      std::string id = IdOf(r.Json());
      if (r.status != 201 || id.empty()) {
        problem("create task", r);
        continue;
      }
      w.tasks[id] = {title, "pending"};
      w.round_tasks.push_back(id);
      ++w.acked;
    } else if (pick < 85) {  // a claim, mostly followed by a completion
      auto r = Http(port, "POST", "/api/v1/tasks/claim",
                    R"({"agent":)" + Str(w.agent) + R"(,"lease_seconds":)" +
                        std::to_string(kLeaseSeconds) + R"(,"plan_id":)" + Str(w.plan) + "}");
      if (r.status == 0) {
        w.inflight_claim = true;
        ++w.unanswered;
        return;
      }
      if (r.status == 204) continue;
      std::string id = IdOf(r.Json());
      if (r.status != 200 || id.empty() || StringField(r.Json(), "lease_owner") != w.agent) {
        problem("claim", r);
        continue;
      }
      auto& t = w.tasks[id];
      if (t.title.empty()) t.title = StringField(r.Json(), "title");  // an unanswered create
      t.status = "active";
      w.transitions.push_back({id, "active"});
      ++w.acked;
      if (rng() % 4 == 0) continue;  // left active: the reaper's business
      auto d = Http(port, "POST", "/api/v1/tasks/" + id + "/transition",
                    R"({"to":"completed","actor":)" + Str(w.agent) + "}");
      if (d.status == 0) {
        w.inflight_complete = id;
        ++w.unanswered;
        return;
      }
      if (d.status == 200) {
        t.status = "completed";
        w.transitions.push_back({id, "completed"});
        ++w.acked;
      } else if (d.status != 403 && d.status != 409) {  // lease lost to the reaper: allowed
        problem("complete " + id, d);
      }
    } else {  // a session ended (which queues its summary) and jobs through /api/v1/jobs
      auto s =
          Http(port, "POST", "/api/v1/sessions",
               R"({"agent":)" + Str(w.agent) + R"(,"external_id":)" + Str("crash-" + tag) + "}");
      if (s.status == 0) {
        ++w.unanswered;
        return;
      }
      std::string sid = IdOf(s.Json());
      if ((s.status != 201 && s.status != 200) || sid.empty()) {
        problem("start session", s);
        continue;
      }
      auto e = Http(port, "POST", "/api/v1/sessions/" + sid + "/end", "");
      if (e.status == 0) {
        ++w.unanswered;
        return;
      }
      if (e.status != 200) {
        problem("end session", e);
        continue;
      }
      w.sessions.push_back(sid);
      ++w.acked;
      const std::string body =
          rng() % 2 ? R"({"kind":"session_summary","payload":{"session_id":)" + Str(sid) + "}}"
                    : std::string(R"({"kind":"rollup"})");
      auto j = Http(port, "POST", "/api/v1/jobs", body);
      if (j.status == 0) {
        ++w.unanswered;
        return;
      }
      std::string jid = IdOf(j.Json());
      if ((j.status != 201 && j.status != 200) || jid.empty()) {
        problem("enqueue job", j);
        continue;
      }
      w.jobs.push_back(jid);
      ++w.acked;
    }
  }
}

// Checks the store against every writer's acknowledged writes and brings the
// task models up to the observed state. `api_port` > 0: the current round's
// writes are also read back through the restarted server.
struct CheckCounts {
  size_t memories = 0, tasks = 0, transitions = 0, jobs = 0, sessions = 0, via_api = 0;
};

CheckCounts CheckStore(const std::string& db_path, std::vector<Writer>& writers, int api_port,
                       std::vector<std::string>& failures) {
  CheckCounts counts;
  auto fail = [&](const std::string& what) {
    if (failures.size() < 40) failures.push_back(what);
  };
  for (const auto& p : StoreInvariantProblems(db_path)) fail("store invariant: " + p);
  TestDb db(db_path);
  if (!db.ok()) {
    fail("cannot open the database");
    return counts;
  }
  // Everything read in one read transaction: a consistent snapshot (the
  // restarted worker's reaper may move tasks meanwhile).
  db.Exec("BEGIN");
  std::map<std::string, std::vector<std::string>> task_rows;  // id -> title, status, owner
  for (auto& r : db.Rows("SELECT id, title, status, coalesce(lease_owner, ''),"
                         " coalesce((SELECT actor FROM task_events e WHERE e.task_id = t.id"
                         " ORDER BY e.id DESC LIMIT 1), '') FROM micro_tasks t")) {
    if (r.size() != 5) {
      fail("task query: " + r[0]);
      break;
    }
    task_rows[r[0]] = {r[1], r[2], r[3], r[4]};
  }
  std::map<std::pair<std::string, std::string>, int> events;  // (task, to) -> count
  for (auto& r : db.Rows("SELECT task_id, to_status, count(*) FROM task_events"
                         " GROUP BY task_id, to_status")) {
    if (r.size() == 3) events[{r[0], r[1]}] = std::atoi(r[2].c_str());
  }
  std::map<int64_t, std::pair<std::string, std::string>> memories;  // id -> content, archived
  for (auto& r : db.Rows("SELECT id, content, archived FROM semantic_memory")) {
    if (r.size() == 3) memories[std::atoll(r[0].c_str())] = {r[1], r[2]};
  }
  std::map<std::string, std::string> jobs;  // id -> state
  for (auto& r : db.Rows("SELECT id, state, coalesce(lease_owner, '-'),"
                         " coalesce(lease_expires_at, '-') FROM jobs")) {
    if (r.size() != 4) continue;
    jobs[r[0]] = r[1];
    if (r[1] == "running" && (r[2] == "-" || r[3] == "-"))
      fail("job " + r[0] + " running unleased");
  }
  std::map<std::string, std::string> sessions;
  for (auto& r : db.Rows("SELECT id, status FROM work_sessions")) {
    if (r.size() == 2) sessions[r[0]] = r[1];
  }
  std::string unleased = db.Scalar(
      "SELECT count(*) FROM micro_tasks WHERE status = 'active'"
      " AND (lease_owner IS NULL OR lease_expires_at IS NULL)");
  if (unleased != "0") fail(unleased + " task(s) active without a lease");

  for (auto& w : writers) {
    int claims_explained = 0;
    for (auto& [id, model] : w.tasks) {
      auto it = task_rows.find(id);
      if (it == task_rows.end()) {
        fail(w.agent + ": acknowledged task " + id + " is missing");
        continue;
      }
      ++counts.tasks;
      const auto& row = it->second;  // title, status, owner, last actor
      if (row[0] != model.title) fail("task " + id + " title " + row[0] + " != " + model.title);
      const std::string& now = row[1];
      bool ok = now == model.status;
      if (!ok && model.status == "active" && id == w.inflight_complete && now == "completed") {
        ok = true;  // the unanswered completion committed
      }
      if (!ok && (model.status == "active" || model.status == "pending") &&
          (now == "pending" || now == "failed") && row[3] == "lease-reaper") {
        ok = true;  // superseded by the reaper after the lease expired
      }
      if (!ok && model.status == "pending" && now == "active" && w.inflight_claim &&
          row[2] == w.agent && ++claims_explained == 1) {
        ok = true;  // the unanswered claim committed (at most one task)
      }
      if (!ok) {
        fail(w.agent + ": task " + id + " is " + now + " but was acknowledged " + model.status +
             " (last actor " + row[3] + ")");
      }
      model.status = now;
    }
    std::map<std::pair<std::string, std::string>, int> acked;
    for (const auto& t : w.transitions) ++acked[{t.task, t.to}];
    for (const auto& [key, n] : acked) {
      counts.transitions += static_cast<size_t>(n);
      if (events[key] < n) {
        fail(w.agent + ": " + std::to_string(n) + " acknowledged transition(s) of " + key.first +
             " to " + key.second + " but " + std::to_string(events[key]) + " event(s)");
      }
    }
    for (const auto& m : w.memories) {
      auto it = memories.find(m.id);
      if (it == memories.end()) {
        fail(w.agent + ": acknowledged memory " + std::to_string(m.id) + " is missing");
        continue;
      }
      ++counts.memories;
      if (it->second.first != m.content) {
        fail("memory " + std::to_string(m.id) + " content differs: " + it->second.first);
      }
      if (it->second.second != "0") fail("memory " + std::to_string(m.id) + " archived");
    }
    for (const auto& j : w.jobs) {
      auto it = jobs.find(j);
      if (it == jobs.end()) {
        fail(w.agent + ": acknowledged job " + j + " is missing");
      } else if (it->second != "queued" && it->second != "running" && it->second != "done") {
        fail("job " + j + " is " + it->second);
      } else {
        ++counts.jobs;
      }
    }
    for (const auto& s : w.sessions) {
      auto it = sessions.find(s);
      if (it == sessions.end() || it->second != "ended") {
        fail(w.agent + ": acknowledged session end " + s + " is " +
             (it == sessions.end() ? "missing" : it->second));
      } else {
        ++counts.sessions;
      }
    }
    // The round's memories are found by the FTS index under their token.
    for (size_t i : w.round_memories) {
      const auto& m = w.memories[i];
      std::string hit =
          db.Scalar("SELECT rowid FROM memory_fts WHERE memory_fts MATCH '\"" + m.token + "\"'");
      if (hit != std::to_string(m.id)) {
        fail("memory " + std::to_string(m.id) + " not found by FTS (" + hit + ")");
      }
    }
  }
  db.Exec("COMMIT");
  if (api_port <= 0) return counts;
  // The restarted server serves the round's writes.
  for (auto& w : writers) {
    for (size_t i : w.round_memories) {
      const auto& m = w.memories[i];
      auto r = Http(api_port, "GET", "/api/v1/memories/" + std::to_string(m.id));
      if (r.status != 200 || StringField(r.Json(), "content") != m.content) {
        fail("GET memory " + std::to_string(m.id) + ": " + std::to_string(r.status));
      } else {
        ++counts.via_api;
      }
    }
    for (const auto& id : w.round_tasks) {
      auto r = Http(api_port, "GET", "/api/v1/tasks/" + id);
      if (r.status != 200 || StringField(r.Json(), "title") != w.tasks[id].title) {
        fail("GET task " + id + ": " + std::to_string(r.status));
      } else {
        ++counts.via_api;
      }
    }
  }
  return counts;
}

std::string LogTail(const std::string& path) {
  std::string text = ReadText(path);
  if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
  return text;
}

TEST(CrashTest, KillNineDuringWriteStormLosesNoAcknowledgedWrite) {
  const int rounds = static_cast<int>(EnvLong("DEVSTREAM_CRASH_ROUNDS", 20));
  const uint64_t seed = static_cast<uint64_t>(EnvLong("DEVSTREAM_CRASH_SEED", 20261126));
  std::cout << "[ crash ] seed " << seed << ", " << rounds
            << " rounds (DEVSTREAM_CRASH_SEED / DEVSTREAM_CRASH_ROUNDS reproduce)" << std::endl;
  const std::string dir = TempDir();
  const std::string db = dir + "/crash.db";
  DirCleanup cleanup{dir};

  Server server(db, dir + "/server.log", {"--mode", "api"}, kTiming);
  BackgroundProcess* worker = nullptr;
  std::unique_ptr<BackgroundProcess> worker_holder;
  // The worker is started first and waited for last, so that its start-up
  // overlaps the server's and the checks.
  auto start_worker = [&] {
    worker_holder = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"worker", "--db", db}, dir + "/worker.log", kTiming);
    worker = worker_holder.get();
    return worker->Start("", 30000);
  };
  auto worker_ready = [&] {
    return WaitUntil([&] { return worker->Stdout().find("DevStream worker") != std::string::npos; },
                     std::chrono::milliseconds(30000), std::chrono::milliseconds(10));
  };
  ASSERT_TRUE(start_worker()) << LogTail(dir + "/worker.log");
  ASSERT_TRUE(server.Start()) << LogTail(dir + "/server.log");
  ASSERT_TRUE(worker_ready()) << LogTail(dir + "/worker.log");

  std::vector<Writer> writers(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    Writer& w = writers[static_cast<size_t>(i)];
    w.index = i;
    w.agent = "crash-agent-" + std::to_string(i);
    auto plan = Http(server.port(), "POST", "/api/v1/plans",
                     R"({"title":)" + Str("Crash plan " + std::to_string(i)) + "}");
    ASSERT_EQ(plan.status, 201) << plan.body;
    w.plan = IdOf(plan.Json());
    auto phase =
        Http(server.port(), "POST", "/api/v1/plans/" + w.plan + "/phases", R"({"name":"Storm"})");
    ASSERT_EQ(phase.status, 201) << phase.body;
    w.phase = IdOf(phase.Json());
  }

  std::vector<std::string> failures;
  std::set<std::string> caught_running;  // jobs running when their worker was killed
  size_t total_acked = 0, total_unanswered = 0;
  double slowest_round_ms = 0;
  for (int round = 0; round < rounds && failures.empty(); ++round) {
    const auto t_round = Clock::now();
    std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(round));
    const int kill_worker_ms = 100 + static_cast<int>(rng() % 600);
    const int kill_server_ms = 100 + static_cast<int>(rng() % 600);

    // The storm, and the kills at their moments.
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    const auto t_storm = Clock::now();
    for (auto& w : writers) {
      threads.emplace_back(
          Storm, std::ref(w), server.port(), round,
          seed ^ (static_cast<uint64_t>(round) << 8 | static_cast<uint64_t>(w.index)),
          std::cref(stop));
    }
    const bool worker_first = kill_worker_ms <= kill_server_ms;
    std::this_thread::sleep_until(
        t_storm + std::chrono::milliseconds(std::min(kill_worker_ms, kill_server_ms)));
    worker_first ? worker->Kill() : server.Kill();
    std::this_thread::sleep_until(
        t_storm + std::chrono::milliseconds(std::max(kill_worker_ms, kill_server_ms)));
    worker_first ? server.Kill() : worker->Kill();
    stop = true;
    for (auto& t : threads) t.join();
    // Jobs the dead worker held: they must be run again after a restart.
    for (auto& r : QueryDatabase(db, "SELECT id FROM jobs WHERE state = 'running'")) {
      if (r.size() == 1 && r[0].rfind("<error", 0) != 0) caught_running.insert(r[0]);
    }

    // Restart and check everything acknowledged so far.
    const auto t_restart = Clock::now();
    ASSERT_TRUE(start_worker()) << "restart after round " << round << ": "
                                << LogTail(dir + "/worker.log");
    ASSERT_TRUE(server.Start()) << "restart after round " << round << ": "
                                << LogTail(dir + "/server.log");
    const double restart_ms = MillisSince(t_restart);
    const auto t_check = Clock::now();
    auto counts = CheckStore(db, writers, server.port(), failures);
    ASSERT_TRUE(worker_ready() && worker->running())
        << "worker restart after round " << round << ": " << LogTail(dir + "/worker.log");
    for (auto& w : writers) {
      for (auto& p : w.problems) failures.push_back(p);
      w.problems.clear();
    }
    int acked = 0, unanswered = 0;
    for (const auto& w : writers) {
      acked += w.acked;
      unanswered += w.unanswered;
    }
    total_acked += static_cast<size_t>(acked);
    total_unanswered += static_cast<size_t>(unanswered);
    const double round_ms = MillisSince(t_round);
    slowest_round_ms = std::max(slowest_round_ms, round_ms);
    std::cout << "[ crash ] round " << round << ": kill " << (worker_first ? "worker" : "server")
              << " at " << std::min(kill_worker_ms, kill_server_ms) << " ms, "
              << (worker_first ? "server" : "worker") << " at "
              << std::max(kill_worker_ms, kill_server_ms) << " ms; " << acked
              << " writes acknowledged, " << unanswered << " unanswered; verified "
              << counts.memories << " memories, " << counts.tasks << " tasks, "
              << counts.transitions << " transitions, " << counts.jobs << " jobs, "
              << counts.sessions << " sessions (" << counts.via_api << " via API); restart "
              << static_cast<int>(restart_ms) << " ms, check "
              << static_cast<int>(MillisSince(t_check)) << " ms, round "
              << static_cast<int>(round_ms) << " ms" << std::endl;
    // Each round restarted the pair once more: the server and worker now
    // running serve the next round.
  }
  for (const auto& f : failures) ADD_FAILURE() << f;
  if (!failures.empty()) {
    cleanup.keep = true;
    std::cout << "kept " << dir << " for inspection\n"
              << "---- server.log ----\n"
              << LogTail(dir + "/server.log") << "\n---- worker.log ----\n"
              << LogTail(dir + "/worker.log") << std::endl;
    return;
  }

  // Final: every acknowledged job finishes (those caught running resume),
  // expired leases are reaped, and both processes shut down cleanly.
  std::vector<std::string> all_jobs;
  for (const auto& w : writers) all_jobs.insert(all_jobs.end(), w.jobs.begin(), w.jobs.end());
  std::string pending_jobs;
  bool jobs_done = WaitUntil(
      [&] {
        TestDb d(db);
        pending_jobs = d.Scalar(
            "SELECT count(*) || ' not done, e.g. ' || coalesce(min(id || ' ' || state), '-')"
            " FROM jobs WHERE state <> 'done' AND (kind <> 'lease_reaper' OR state <> 'queued'"
            " AND state <> 'running')");
        return pending_jobs.rfind("0 ", 0) == 0;
      },
      std::chrono::milliseconds(60000), std::chrono::milliseconds(200));
  EXPECT_TRUE(jobs_done) << pending_jobs;
  {
    TestDb d(db);
    std::map<std::string, std::pair<std::string, int>> states;
    for (auto& r : d.Rows("SELECT id, state, attempts FROM jobs")) {
      if (r.size() == 3) states[r[0]] = {r[1], std::atoi(r[2].c_str())};
    }
    for (const auto& j : all_jobs) {
      ASSERT_TRUE(states.count(j)) << "acknowledged job " << j << " lost";
      EXPECT_EQ(states[j].first, "done") << j;
    }
    for (const auto& j : caught_running) {
      ASSERT_TRUE(states.count(j)) << "job " << j << " of a killed worker lost";
      EXPECT_EQ(states[j].first, "done") << j;
      EXPECT_GE(states[j].second, 2) << "job " << j << " of a killed worker did not run again";
    }
    // Every acknowledged session end produced its summary (the job's effect).
    for (const auto& w : writers) {
      for (const auto& s : w.sessions) {
        EXPECT_EQ(d.Scalar("SELECT count(*) FROM work_sessions w JOIN semantic_memory m ON"
                           " m.id = w.summary_memory_id WHERE w.id = '" +
                           s + "'"),
                  "1")
            << "session " << s << " has no summary";
      }
    }
  }
  std::string expired;
  bool reaped = WaitUntil(
      [&] {
        expired = QueryDatabase(db,
                                "SELECT count(*) FROM micro_tasks WHERE status = 'active' AND"
                                " lease_expires_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now',"
                                " '-2 seconds')")[0][0];
        return expired == "0";
      },
      std::chrono::milliseconds(30000), std::chrono::milliseconds(200));
  EXPECT_TRUE(reaped) << expired << " active task(s) with a lease long expired";
  std::vector<std::string> final_failures;
  CheckStore(db, writers, 0, final_failures);
  for (const auto& f : final_failures) ADD_FAILURE() << "final: " << f;
  EXPECT_EQ(worker->Stop(15000), 0) << LogTail(dir + "/worker.log");
  EXPECT_EQ(server.Stop(15000), 0) << LogTail(dir + "/server.log");
  for (const auto& p : StoreInvariantProblems(db)) ADD_FAILURE() << "after shutdown: " << p;
  std::string logs = ReadText(dir + "/server.log") + ReadText(dir + "/worker.log");
  EXPECT_FALSE(LooksLikeLockTrouble(logs)) << "lock contention surfaced in a log";
  std::cout << "[ crash ] " << rounds << " rounds: " << total_acked << " writes acknowledged, "
            << total_unanswered << " unanswered at a kill; " << all_jobs.size()
            << " jobs acknowledged, " << caught_running.size()
            << " caught running by a kill and resumed; slowest round "
            << static_cast<int>(slowest_round_ms) << " ms" << std::endl;
  if (HasFailure()) cleanup.keep = true;
}

}  // namespace
}  // namespace ds::rtest
