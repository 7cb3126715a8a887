// Worker against a real migrated SQLite file: running handlers, retries and
// the dead letter, draining (a handler stopped mid-job gives its job back),
// the workers row and LiveWorkers, lease renewal by the heartbeat thread; and
// the standard job handlers (RegisterJobHandlers over OpenServices) run twice
// to show they are idempotent.
#include "engine/worker.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <thread>

#include "app/services.h"
#include "core/clock.h"
#include "engine/job_handlers.h"
#include "test_util.h"

namespace ds::engine {
namespace {

using std::chrono::milliseconds;

// One integer from a query (count(*) and friends); -1 on error.
int64_t QueryInt(Database& db, const std::string& sql) {
  int64_t out = -1;
  Status st = db.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && !s.IsNull(0)) out = s.Int(0);
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << sql << ": " << st.ToString();
  return out;
}

std::string QueryText(Database& db, const std::string& sql) {
  std::string out;
  Status st = db.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && !s.IsNull(0)) out = s.Text(0);
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << sql << ": " << st.ToString();
  return out;
}

Status Exec(Database& db, const std::string& sql) {
  return db.Write([&](Connection& c) { return c.Exec(sql); });
}

// Polls `pred` for up to `timeout`.
template <typename Pred>
bool WaitFor(Pred pred, milliseconds timeout = milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return pred();
}

WorkerOptions FastOptions() {
  WorkerOptions o;
  o.poll_ms = 10;
  o.heartbeat_ms = 50;
  o.lease_ms = 60'000;
  return o;
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb();
    ASSERT_TRUE(db_);
    queue_ = std::make_unique<JobQueue>(*db_, Backoff{0, 0});
  }

  Job Enqueue(const std::string& kind, json::object payload = {}, int max_attempts = 5) {
    EnqueueOptions o;
    o.max_attempts = max_attempts;
    auto r = queue_->Enqueue(kind, payload, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->job : Job{};
  }

  std::string StateOf(const std::string& id) {
    auto j = queue_->Get(id);
    return j.ok() ? j->state : "?";
  }

  std::unique_ptr<Database> db_;
  std::unique_ptr<JobQueue> queue_;
};

TEST_F(WorkerTest, RunsRegisteredHandlerAndMarksDone) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  std::string seen_value, seen_kind;
  w.Register("echo", [&](JobContext& ctx) -> Status {
    seen_value = std::string(ctx.payload.at("value").as_string());
    seen_kind = ctx.job.kind;
    EXPECT_FALSE(ctx.stopping.load());
    ++calls;
    return Status::Ok();
  });
  EXPECT_EQ(w.kinds(), std::vector<std::string>{"echo"});
  ASSERT_TRUE(w.Start().ok());
  Job j = Enqueue("echo", {{"value", "hello"}});
  EXPECT_TRUE(WaitFor([&] { return StateOf(j.id) == "done"; }));
  w.Stop();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(seen_value, "hello");
  EXPECT_EQ(seen_kind, "echo");
  Job done = queue_->Get(j.id).value();
  EXPECT_EQ(done.attempts, 1);
  EXPECT_TRUE(done.finished_at);
  EXPECT_FALSE(done.lease_owner);
}

TEST_F(WorkerTest, RunOnceRunsDueJobsOfItsKindsOnly) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  w.Register("mine", [&](JobContext&) -> Status {
    ++calls;
    return Status::Ok();
  });
  Job a = Enqueue("mine");
  Job b = Enqueue("mine");
  Job other = Enqueue("not_mine");
  auto ran = w.RunOnce();
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  EXPECT_EQ(*ran, 2);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(StateOf(a.id), "done");
  EXPECT_EQ(StateOf(b.id), "done");
  EXPECT_EQ(StateOf(other.id), "queued");  // no handler here: left for another worker
  EXPECT_EQ(*w.RunOnce(), 0);
  // max_jobs bounds a run.
  Enqueue("mine");
  Enqueue("mine");
  EXPECT_EQ(*w.RunOnce(1), 1);
  EXPECT_EQ(*w.RunOnce(), 1);
  // RunOnce leaves no workers row behind.
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM workers"), 0);
}

TEST_F(WorkerTest, FailingHandlerIsRetriedThenDeadLettered) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  w.Register("flaky", [&](JobContext& ctx) -> Status {
    ++calls;
    return Status::Internal("attempt " + std::to_string(ctx.job.attempts) + " broke");
  });
  Job j = Enqueue("flaky", {}, /*max_attempts=*/3);
  auto ran = w.RunOnce();  // Backoff{0,0}: each retry is due at once
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, 3);
  EXPECT_EQ(calls.load(), 3);
  Job dead = queue_->Get(j.id).value();
  EXPECT_EQ(dead.state, "dead");
  EXPECT_EQ(dead.attempts, 3);
  EXPECT_EQ(dead.last_error, "attempt 3 broke");
  EXPECT_EQ(*w.RunOnce(), 0);  // the dead letter is not run again
  // Retried by an operator, it runs again.
  ASSERT_TRUE(queue_->Retry(j.id).ok());
  EXPECT_EQ(*w.RunOnce(), 3);
  EXPECT_EQ(calls.load(), 6);
}

TEST_F(WorkerTest, HandlerSucceedingOnRetryEndsDone) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  w.Register("second_time", [&](JobContext&) -> Status {
    return ++calls < 2 ? Status::Unavailable("not yet") : Status::Ok();
  });
  Job j = Enqueue("second_time");
  EXPECT_EQ(*w.RunOnce(), 2);
  Job done = queue_->Get(j.id).value();
  EXPECT_EQ(done.state, "done");
  EXPECT_EQ(done.attempts, 2);
}

TEST_F(WorkerTest, PermanentErrorsFailWithoutRetry) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  w.Register("strict", [&](JobContext&) -> Status {
    ++calls;
    return Status::InvalidArgument("payload.x is required");
  });
  Job j = Enqueue("strict");
  EXPECT_EQ(*w.RunOnce(), 1);
  EXPECT_EQ(calls.load(), 1);
  Job f = queue_->Get(j.id).value();
  EXPECT_EQ(f.state, "failed");
  EXPECT_EQ(f.last_error, "payload.x is required");
}

TEST_F(WorkerTest, StopMidJobGivesTheJobBackUncounted) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<bool> entered{false};
  std::atomic<int> calls{0};
  w.Register("long", [&](JobContext& ctx) -> Status {
    ++calls;
    entered = true;
    while (!ctx.stopping) std::this_thread::sleep_for(milliseconds(2));
    return ctx.GiveBack();
  });
  Job j = Enqueue("long", {}, /*max_attempts=*/1);
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  EXPECT_EQ(StateOf(j.id), "running");
  w.Stop();  // as on SIGTERM
  Job back = queue_->Get(j.id).value();
  EXPECT_EQ(back.state, "queued");
  EXPECT_EQ(back.attempts, 0);
  EXPECT_FALSE(back.lease_owner);
  EXPECT_EQ(calls.load(), 1);
  // Re-runnable: its only attempt was not used up.
  Worker w2(*db_, *queue_, FastOptions());
  w2.Register("long", [](JobContext&) { return Status::Ok(); });
  EXPECT_EQ(*w2.RunOnce(), 1);
  EXPECT_EQ(StateOf(j.id), "done");
}

TEST_F(WorkerTest, AFailureDuringDrainIsCountedNotGivenBack) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<bool> entered{false};
  w.Register("long", [&](JobContext& ctx) -> Status {
    entered = true;
    while (!ctx.stopping) std::this_thread::sleep_for(milliseconds(2));
    return Status::Unavailable("embedder down");  // a real error, not a give-back
  });
  Job j = Enqueue("long", {}, /*max_attempts=*/1);
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  w.Stop();
  Job after = queue_->Get(j.id).value();
  EXPECT_EQ(after.state, "dead");
  EXPECT_EQ(after.attempts, 1);
  EXPECT_EQ(after.last_error, "embedder down");
}

TEST_F(WorkerTest, AThrowingHandlerFailsItsJobAndTheWorkerGoesOn) {
  Worker w(*db_, *queue_, FastOptions());
  w.Register("boom", [](JobContext&) -> Status { throw std::runtime_error("kaboom"); });
  Job j = Enqueue("boom", {}, /*max_attempts=*/1);
  EXPECT_EQ(*w.RunOnce(), 1);
  Job after = queue_->Get(j.id).value();
  EXPECT_EQ(after.state, "dead");
  ASSERT_TRUE(after.last_error);
  EXPECT_NE(after.last_error->find("kaboom"), std::string::npos);
}

TEST_F(WorkerTest, UnavailableWhileNotStoppingIsAnOrdinaryFailure) {
  Worker w(*db_, *queue_, FastOptions());
  w.Register("busy", [](JobContext&) { return Status::Unavailable("db busy"); });
  Job j = Enqueue("busy", {}, 2);
  EXPECT_EQ(*w.RunOnce(), 2);
  EXPECT_EQ(StateOf(j.id), "dead");
}

TEST_F(WorkerTest, RegistersInWorkersTableWhileRunning) {
  EXPECT_EQ(LiveWorkers(*db_, 60'000).value(), 0);
  WorkerOptions o = FastOptions();
  o.mode = "unit_test";
  Worker w(*db_, *queue_, o);
  w.Register("noop", [](JobContext&) { return Status::Ok(); });
  ASSERT_TRUE(w.Start().ok());
  EXPECT_EQ(LiveWorkers(*db_, 60'000).value(), 1);
  EXPECT_EQ(QueryText(*db_, "SELECT mode FROM workers WHERE id = '" + w.id() + "'"), "unit_test");
  EXPECT_EQ(QueryInt(*db_, "SELECT pid FROM workers WHERE id = '" + w.id() + "'"),
            static_cast<int64_t>(getpid()));
  // A stale row does not count as live.
  ASSERT_TRUE(Exec(*db_,
                   "INSERT INTO workers(id, host, pid, mode, started_at, heartbeat_at) VALUES("
                   "'wkr_stale', 'h', 1, 'x', '2000-01-01T00:00:00.000Z', "
                   "'2000-01-01T00:00:00.000Z')")
                  .ok());
  EXPECT_EQ(LiveWorkers(*db_, 60'000).value(), 1);
  // Jobs done are counted on the row.
  Enqueue("noop");
  EXPECT_TRUE(WaitFor([&] {
    return QueryInt(*db_, "SELECT jobs_done FROM workers WHERE id = '" + w.id() + "'") == 1;
  }));
  // The heartbeat refreshes the row (and re-creates it if someone deleted it).
  ASSERT_TRUE(Exec(*db_, "DELETE FROM workers WHERE id = '" + w.id() + "'").ok());
  EXPECT_TRUE(WaitFor([&] { return LiveWorkers(*db_, 60'000).value() == 1; }));
  w.Stop();
  EXPECT_EQ(LiveWorkers(*db_, 60'000).value(), 0);
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM workers WHERE id = '" + w.id() + "'"), 0);
  w.Stop();  // idempotent
}

TEST_F(WorkerTest, HeartbeatKeepsTheRunningJobsLeaseFresh) {
  WorkerOptions o = FastOptions();
  o.lease_ms = 500;
  o.heartbeat_ms = 40;
  Worker w(*db_, *queue_, o);
  std::atomic<bool> release{false}, entered{false};
  w.Register("slow", [&](JobContext& ctx) -> Status {
    entered = true;
    while (!release && !ctx.stopping) std::this_thread::sleep_for(milliseconds(5));
    return Status::Ok();
  });
  Job j = Enqueue("slow");
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  std::string first_expiry = queue_->Get(j.id)->lease_expires_at.value_or("");
  // Two lease lengths later, a reaper still finds nothing to requeue.
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    auto requeued = queue_->RequeueExpired();
    ASSERT_TRUE(requeued.ok());
    EXPECT_TRUE(requeued->empty()) << "lease expired while the handler ran";
  }
  EXPECT_GT(queue_->Get(j.id)->lease_expires_at.value_or(""), first_expiry);
  EXPECT_EQ(QueryText(*db_, "SELECT current_job FROM workers WHERE id = '" + w.id() + "'"), j.id);
  release = true;
  EXPECT_TRUE(WaitFor([&] { return StateOf(j.id) == "done"; }));
  w.Stop();
  EXPECT_EQ(queue_->Get(j.id)->attempts, 1);
}

TEST_F(WorkerTest, WorkerWithoutHandlersClaimsNothing) {
  Worker w(*db_, *queue_, FastOptions());
  Job j = Enqueue("anything");
  auto ran = w.RunOnce();
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  EXPECT_EQ(*ran, 0);
  Job still = queue_->Get(j.id).value();
  EXPECT_EQ(still.state, "queued");
  EXPECT_EQ(still.attempts, 0);
}

TEST_F(WorkerTest, PruneDeadWorkersRemovesOnlySilentRows) {
  Worker w(*db_, *queue_, FastOptions());
  w.Register("noop", [](JobContext&) { return Status::Ok(); });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(Exec(*db_,
                   "INSERT INTO workers(id, host, pid, mode, started_at, heartbeat_at) VALUES("
                   "'wkr_crashed', 'h', 1, 'x', '2000-01-01T00:00:00.000Z', "
                   "'2000-01-01T00:00:00.000Z')")
                  .ok());
  auto pruned = PruneDeadWorkers(*db_, 3'600'000);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, 1);
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM workers WHERE id = 'wkr_crashed'"), 0);
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM workers WHERE id = '" + w.id() + "'"), 1);
  EXPECT_EQ(PruneDeadWorkers(*db_, 3'600'000).value(), 0);
  w.Stop();
}

TEST_F(WorkerTest, MalformedPayloadIsAPermanentFailure) {
  Worker w(*db_, *queue_, FastOptions());
  std::atomic<int> calls{0};
  w.Register("k", [&](JobContext&) {
    ++calls;
    return Status::Ok();
  });
  Job j = Enqueue("k");
  ASSERT_TRUE(Exec(*db_, "UPDATE jobs SET payload = '[1,2]' WHERE id = '" + j.id + "'").ok());
  EXPECT_EQ(*w.RunOnce(), 1);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(StateOf(j.id), "failed");
}

// ---------------------------------------------------------------------------
// The standard handlers, each run twice, leave the state of running once.

class JobHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ds::testing::TempDir();
    auto s = app::OpenServices(dir_ + "/devstream.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sv_ = std::move(s).value();
    EngineSettings settings;
    settings.backup_dir = dir_ + "/backups";
    settings.backup_keep = 2;
    settings.backup_keep_days = 0;  // beyond the newest two, any age goes
    settings.retention.max_age_days = 30;
    settings.retention.max_relevance = 0.3;
    engine_ = std::make_unique<EngineServices>(
        EngineServices{*sv_->db, *sv_->jobs, *sv_->workflow, *sv_->sessions, settings});
    worker_ = std::make_unique<Worker>(*sv_->db, *sv_->jobs, FastOptions());
    RegisterJobHandlers(*worker_, *engine_);
  }

  void TearDown() override {
    worker_.reset();
    engine_.reset();
    sv_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Database& db() { return *sv_->db; }

  // Enqueues one job of `kind` and runs everything due; the job must end done.
  void Run(const std::string& kind, json::object payload = {}) {
    auto e = sv_->jobs->Enqueue(kind, payload);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    auto ran = worker_->RunOnce();
    ASSERT_TRUE(ran.ok()) << ran.status().ToString();
    EXPECT_GE(*ran, 1);
    Job j = sv_->jobs->Get(e->job.id).value();
    EXPECT_EQ(j.state, "done") << kind << ": " << j.last_error.value_or("");
  }

  memory::Memory Remember(const std::string& content, const std::string& type = "learning") {
    memory::MemoryInput in;
    in.content = content;
    in.content_type = type;
    auto r = sv_->memory->Store(in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->memory : memory::Memory{};
  }

  // A plan with two tasks completed through TaskService directly (so without
  // completion memories) and one left pending.
  std::vector<tasks::Task> CompletedTasksWithoutMemories() {
    tasks::PlanInput pi;
    pi.title = "Plan";
    auto plan = sv_->tasks->CreatePlan(pi).value();
    tasks::PhaseInput ph;
    ph.name = "Phase";
    auto phase = sv_->tasks->CreatePhase(plan.id, ph).value();
    std::vector<tasks::Task> out;
    for (const char* title : {"write parser", "research options"}) {
      tasks::TaskInput ti;
      ti.title = title;
      ti.task_type = std::string(title).rfind("research", 0) == 0 ? "research" : "coding";
      ti.output_files = {std::string("src/") + title + ".cc"};
      auto t = sv_->tasks->CreateTask(phase.id, ti).value();
      tasks::TransitionInput tr;
      tr.to = "active";
      EXPECT_TRUE(sv_->tasks->Transition(t.id, tr).ok());
      tr.to = "completed";
      tr.note = std::string("finished ") + title;
      auto done = sv_->tasks->Transition(t.id, tr);
      EXPECT_TRUE(done.ok()) << done.status().ToString();
      out.push_back(*done);
    }
    tasks::TaskInput pending;
    pending.title = "later";
    EXPECT_TRUE(sv_->tasks->CreateTask(phase.id, pending).ok());
    return out;
  }

  std::string dir_;
  std::unique_ptr<app::Services> sv_;
  std::unique_ptr<EngineServices> engine_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(JobHandlersTest, RegistersEveryStandardKind) {
  EXPECT_EQ(worker_->kinds(),
            (std::vector<std::string>{"backup", "embed_memory", "lease_reaper", "reembed_all",
                                      "retention", "rollup", "session_summary"}));
  EXPECT_EQ(worker_->kinds(), StandardJobKinds());
}

TEST_F(JobHandlersTest, SessionSummaryTwiceLeavesOneSummaryMemory) {
  SessionInput si;
  si.agent = "claude";
  auto started = sv_->sessions->Start(si);
  ASSERT_TRUE(started.ok());
  const std::string sid = started->first.id;
  Remember("Decided to keep SQLite as the only store", "decision");
  ASSERT_TRUE(sv_->sessions->End(sid).ok());
  // End queued the job; running it writes the summary.
  auto ran = worker_->RunOnce();
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, 1);
  Session first = sv_->sessions->Get(sid).value();
  ASSERT_FALSE(first.summary.empty());
  ASSERT_TRUE(first.summary_memory_id);
  std::string count_sql = "SELECT count(*) FROM semantic_memory WHERE session_id = '" + sid +
                          "' AND content_type = 'context'";
  EXPECT_EQ(QueryInt(db(), count_sql), 1);

  Run("session_summary", {{"session_id", sid}});
  Session second = sv_->sessions->Get(sid).value();
  EXPECT_EQ(second.summary, first.summary);
  EXPECT_EQ(second.summary_memory_id, first.summary_memory_id);
  EXPECT_EQ(QueryInt(db(), count_sql), 1);
  EXPECT_NE(first.summary.find("Decided to keep SQLite"), std::string::npos) << first.summary;

  // A payload without session_id is a permanent failure.
  auto bad = sv_->jobs->Enqueue("session_summary", {});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(*worker_->RunOnce(), 1);
  EXPECT_EQ(sv_->jobs->Get(bad->job.id)->state, "failed");
}

TEST_F(JobHandlersTest, RollupTwiceWritesOneCompletionMemoryPerTask) {
  auto done = CompletedTasksWithoutMemories();
  ASSERT_EQ(done.size(), 2u);
  const std::string engine_memories =
      "SELECT count(*) FROM semantic_memory WHERE source = 'engine' AND task_id IS NOT NULL";
  EXPECT_EQ(QueryInt(db(), engine_memories), 0);
  // Break a roll-up by hand so the job has something to repair.
  ASSERT_TRUE(
      Exec(db(), "UPDATE phases SET status = 'completed' WHERE id = '" + done[0].phase_id + "'")
          .ok());

  Run("rollup");
  EXPECT_EQ(QueryInt(db(), engine_memories), 2);
  for (const auto& t : done) {
    EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory WHERE task_id = '" + t.id +
                                 "' AND source = 'engine'"),
              1)
        << t.id;
  }
  EXPECT_EQ(sv_->tasks->GetPhase(done[0].phase_id)->status, "active");
  std::string ids_after_first =
      QueryText(db(), "SELECT group_concat(id) FROM (SELECT id FROM semantic_memory ORDER BY id)");

  Run("rollup");
  EXPECT_EQ(QueryInt(db(), engine_memories), 2);
  EXPECT_EQ(
      QueryText(db(), "SELECT group_concat(id) FROM (SELECT id FROM semantic_memory ORDER BY id)"),
      ids_after_first);
  EXPECT_EQ(sv_->tasks->GetPhase(done[0].phase_id)->status, "active");
}

TEST_F(JobHandlersTest, RetentionTwiceArchivesOnce) {
  auto stale = Remember("an old, unimportant note about a removed flag");
  auto fresh = Remember("a fresh note about the parser");
  auto pinned_old = Remember("an old pinned note");
  ASSERT_TRUE(Exec(db(),
                   "UPDATE semantic_memory SET created_at = '2001-01-01T00:00:00.000Z', "
                   "relevance_score = 0.1 WHERE id IN (" +
                       std::to_string(stale.id) + "," + std::to_string(pinned_old.id) + ")")
                  .ok());
  ASSERT_TRUE(Exec(db(), "UPDATE semantic_memory SET pinned = 1 WHERE id = " +
                             std::to_string(pinned_old.id))
                  .ok());
  const std::string archived = "SELECT count(*) FROM semantic_memory WHERE archived = 1";

  Run("retention");
  EXPECT_EQ(QueryInt(db(), archived), 1);
  EXPECT_TRUE(sv_->memory->Get(stale.id)->archived);
  EXPECT_FALSE(sv_->memory->Get(fresh.id)->archived);
  EXPECT_FALSE(sv_->memory->Get(pinned_old.id)->archived);
  std::string updated = sv_->memory->Get(stale.id)->updated_at;

  Run("retention", {{"optimize", true}});
  EXPECT_EQ(QueryInt(db(), archived), 1);
  EXPECT_EQ(sv_->memory->Get(stale.id)->updated_at, updated);  // not archived again
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory"), 3);
}

// Row counts of a few tables in an SQLite file opened directly, plus its
// integrity_check verdict.
std::map<std::string, int64_t> InspectCopy(const std::string& path, std::string* verdict) {
  std::map<std::string, int64_t> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << path << ": " << (db ? sqlite3_errmsg(db) : "?");
    sqlite3_close(db);
    return out;
  }
  auto one = [&](const std::string& sql) -> std::string {
    sqlite3_stmt* s = nullptr;
    std::string v;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0)) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    }
    sqlite3_finalize(s);
    return v;
  };
  *verdict = one("PRAGMA integrity_check");
  for (const char* t : {"micro_tasks", "semantic_memory", "memory_vectors", "projects",
                        "intervention_plans", "schema_migrations"}) {
    std::string v = one(std::string("SELECT count(*) FROM ") + t);
    out[t] = v.empty() ? -1 : std::stoll(v);
  }
  sqlite3_close(db);
  return out;
}

std::map<std::string, int64_t> LiveCounts(Database& db) {
  std::map<std::string, int64_t> out;
  for (const char* t : {"micro_tasks", "semantic_memory", "memory_vectors", "projects",
                        "intervention_plans", "schema_migrations"}) {
    out[t] = QueryInt(db, std::string("SELECT count(*) FROM ") + t);
  }
  return out;
}

TEST_F(JobHandlersTest, BackupToANamedFileTwiceIsAValidCopy) {
  CompletedTasksWithoutMemories();
  Remember("something worth backing up");
  Remember("and something else", "decision");
  std::string dest = dir_ + "/backups/copy.db";
  auto live = LiveCounts(db());
  ASSERT_GT(live["micro_tasks"], 0);
  ASSERT_GT(live["semantic_memory"], 0);

  Run("backup", {{"name", "copy.db"}});
  ASSERT_TRUE(std::filesystem::exists(dest));
  EXPECT_FALSE(std::filesystem::exists(dest + ".partial"));
  std::string verdict;
  auto first = InspectCopy(dest, &verdict);
  EXPECT_EQ(verdict, "ok");
  EXPECT_EQ(first, live);

  Run("backup", {{"name", "copy.db"}});
  auto second = InspectCopy(dest, &verdict);
  EXPECT_EQ(verdict, "ok");
  EXPECT_EQ(second, first);
  // A named copy is not a scheduled one: pruning leaves it alone.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/backups")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);

  // Paths, traversal and hidden names are refused before anything is written.
  for (const char* bad_name : {"", "../escape.db", "/tmp/x.db", ".hidden", "a/b.db"}) {
    EXPECT_FALSE(ValidateJobPayload("backup", {{"name", bad_name}}).ok()) << bad_name;
    auto bad = sv_->jobs->Enqueue("backup", {{"name", bad_name}});
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(*worker_->RunOnce(), 1);
    EXPECT_EQ(sv_->jobs->Get(bad->job.id)->state, "failed") << bad_name;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/escape.db"));
  EXPECT_FALSE(ValidateJobPayload("backup", {{"path", dest}}).ok());
}

TEST_F(JobHandlersTest, ScheduledBackupsKeepTheNewest) {
  Remember("backup me");
  std::vector<std::string> job_ids;
  for (int i = 0; i < 3; ++i) {
    auto e = sv_->jobs->Enqueue("backup", {});
    ASSERT_TRUE(e.ok());
    job_ids.push_back(e->job.id);
    ASSERT_EQ(*worker_->RunOnce(), 1);
    EXPECT_EQ(sv_->jobs->Get(e->job.id)->state, "done");
  }
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/backups")) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  // backup_keep = 2: the two newest copies remain.
  EXPECT_EQ(names, (std::vector<std::string>{"devstream-" + job_ids[1] + ".db",
                                             "devstream-" + job_ids[2] + ".db"}));
  std::string verdict;
  auto copy = InspectCopy(dir_ + "/backups/" + names.back(), &verdict);
  EXPECT_EQ(verdict, "ok");
  EXPECT_EQ(copy["semantic_memory"], 1);
}

TEST_F(JobHandlersTest, EmbedAndReembedTwiceLeaveOneVectorPerMemory) {
  Remember("first memory about hashing");
  Remember("second memory about leases");
  Remember("third memory about sessions", "decision");
  const std::string vectors_sql = "SELECT count(*) FROM memory_vectors";
  const std::string digest_sql =
      "SELECT group_concat(memory_id || ':' || model || ':' || hex(vec), ';') FROM "
      "(SELECT * FROM memory_vectors ORDER BY memory_id, model)";
  ASSERT_EQ(QueryInt(db(), vectors_sql), 3);
  std::string original = QueryText(db(), digest_sql);
  ASSERT_TRUE(Exec(db(), "DELETE FROM memory_vectors").ok());
  ASSERT_EQ(QueryInt(db(), vectors_sql), 0);

  for (const char* kind : {"embed_memory", "embed_memory", "reembed_all", "reembed_all"}) {
    Run(kind);
    EXPECT_EQ(QueryInt(db(), vectors_sql), 3) << kind;
    EXPECT_EQ(QueryText(db(), digest_sql), original) << kind;
  }
  EXPECT_EQ(sv_->memory->MissingVectors(), 0);
}

TEST_F(JobHandlersTest, LeaseReaperTwiceReapsOnce) {
  auto done = CompletedTasksWithoutMemories();
  (void)done;
  tasks::ClaimInput ci;
  ci.agent = "gone-agent";
  auto claimed = sv_->tasks->Claim(ci);
  ASSERT_TRUE(claimed.ok());
  ASSERT_TRUE(*claimed);
  const std::string tid = (*claimed)->id;
  ASSERT_TRUE(Exec(db(),
                   "UPDATE micro_tasks SET lease_expires_at = '2001-01-01T00:00:00.000Z' "
                   "WHERE id = '" +
                       tid + "'")
                  .ok());
  // A job whose worker died (a kind this worker does not run).
  auto lost = sv_->jobs->Enqueue("foreign_kind", {});
  ASSERT_TRUE(lost.ok());
  ASSERT_TRUE(sv_->jobs->Claim("dead-worker", 1, {"foreign_kind"}).ok());
  // A worker that crashed long ago left its row behind.
  ASSERT_TRUE(Exec(db(),
                   "INSERT INTO workers(id, host, pid, mode, started_at, heartbeat_at) VALUES("
                   "'wkr_crashed', 'h', 1, 'x', '2000-01-01T00:00:00.000Z', "
                   "'2000-01-01T00:00:00.000Z')")
                  .ok());
  std::this_thread::sleep_for(milliseconds(10));

  Run("lease_reaper");
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM workers WHERE id = 'wkr_crashed'"), 0);
  auto t1 = sv_->tasks->GetTask(tid).value();
  EXPECT_EQ(t1.status, "pending");
  EXPECT_EQ(t1.retry_count, 1);
  Job j1 = sv_->jobs->Get(lost->job.id).value();
  EXPECT_EQ(j1.state, "queued");
  EXPECT_EQ(j1.attempts, 1);

  Run("lease_reaper");
  auto t2 = sv_->tasks->GetTask(tid).value();
  EXPECT_EQ(t2.status, "pending");
  EXPECT_EQ(t2.retry_count, 1);
  EXPECT_EQ(t2.version, t1.version);
  Job j2 = sv_->jobs->Get(lost->job.id).value();
  EXPECT_EQ(j2.state, "queued");
  EXPECT_EQ(j2.attempts, 1);
  EXPECT_EQ(j2.updated_at, j1.updated_at);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM task_events WHERE actor = 'lease-reaper'"), 1);
}

}  // namespace
}  // namespace ds::engine
