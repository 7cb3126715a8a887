// End-to-end tests of the task engine against the real binary: task leases
// (claim, heartbeat, expiry), completion memories and task context, the
// durable job queue, worker processes and their health, the scheduler across
// processes, work sessions, and the engine's CLI commands.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace ds::itest {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls `pred` every `step` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& pred, milliseconds timeout,
               milliseconds step = milliseconds(100)) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

std::string Str(const std::string& s) {
  return json::serialize(json::value(s));
}

std::string IdOf(const json::value& v) {
  if (!v.is_object() || !v.as_object().contains("id") || !v.at("id").is_string()) return "";
  return std::string(v.at("id").as_string());
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// "2024-05-01T12:00:00.123Z" -> Unix milliseconds (-1 when malformed).
int64_t TimestampMillis(const std::string& ts) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

class TaskEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    db_ = dir_ + "/engine.db";
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0) << "graceful shutdown exit code";
    }
    server_.reset();
    std::error_code ec;
    if (HasFailure()) {
      // The processes' logs go with the directory: show their tails first.
      for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
        std::string name = e.path().filename().string();
        if (name.find(".log") == std::string::npos) continue;
        std::ifstream in(e.path());
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
        std::cout << "---- " << name << " ----\n" << text << "\n";
      }
    }
    std::filesystem::remove_all(dir_, ec);
  }

  void StartServer(const std::string& mode = "all", EnvVars env = {}) {
    server_ = std::make_unique<ServerProcess>(db_, std::vector<std::string>{"--mode", mode}, env);
    ASSERT_TRUE(server_->Start()) << "server did not start; see " << server_->log_path();
  }
  HttpResult Post(const std::string& path, const std::string& body,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Http(server_->port(), "POST", path, body, headers);
  }
  HttpResult Get(const std::string& path) { return Http(server_->port(), "GET", path); }

  // A plan with one phase (in the default project).
  void MakePlan(const std::string& title = "Engine plan") {
    auto plan = Post("/api/v1/plans", R"({"title":)" + Str(title) + "}");
    ASSERT_EQ(plan.status, 201) << plan.body;
    plan_ = IdOf(plan.Json());
    auto phase = Post("/api/v1/plans/" + plan_ + "/phases", R"({"name":"Work"})");
    ASSERT_EQ(phase.status, 201) << phase.body;
    phase_ = IdOf(phase.Json());
  }
  // A task in the phase; `fields` are extra JSON members (with a leading comma).
  std::string AddTask(const std::string& title, const std::string& fields = "") {
    auto r =
        Post("/api/v1/phases/" + phase_ + "/tasks", R"({"title":)" + Str(title) + fields + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return IdOf(r.Json());
  }
  json::value Task(const std::string& id) { return Get("/api/v1/tasks/" + id).Json(); }
  json::array Events(const std::string& id) {
    auto v = Get("/api/v1/tasks/" + id + "/events").Json();
    return v.is_object() ? v.at("items").as_array() : json::array{};
  }
  std::string EnqueueJob(const std::string& body) {
    auto r = Post("/api/v1/jobs", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return IdOf(r.Json());
  }
  // Polls the job until its state is `state` (bounded); returns its last JSON.
  json::value WaitForJob(const std::string& id, const std::string& state,
                         milliseconds timeout = milliseconds(20000)) {
    json::value last;
    WaitUntil(
        [&] {
          last = Get("/api/v1/jobs/" + id).Json();
          return last.is_object() && last.at("state") == json::value(state);
        },
        timeout, milliseconds(50));
    return last;
  }
  static void ExpectProblem(const HttpResult& r, std::set<int> statuses, const std::string& what) {
    EXPECT_TRUE(statuses.count(r.status)) << what << " -> " << r.status << " " << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/problem+json") << what;
    auto v = r.Json();
    ASSERT_TRUE(v.is_object()) << what << " -> " << r.body;
    EXPECT_EQ(v.at("status"), json::value(r.status)) << what;
    EXPECT_TRUE(v.at("detail").is_string()) << what;
  }
  // `devstream args... --db <db>`.
  CommandResult Cli(std::vector<std::string> args, const EnvVars& env = {}) {
    args.push_back("--db");
    args.push_back(db_);
    return RunCli(args, env, 60000);
  }

  std::string dir_, db_;
  std::unique_ptr<ServerProcess> server_;
  std::string plan_, phase_;
};

// ---------------------------------------------------------------- leases ---

TEST_F(TaskEngineTest, ClaimHeartbeatCompleteAndLeaseOwnership) {
  StartServer();
  MakePlan();
  std::string low = AddTask("Low priority", R"(,"priority":3)");
  std::string high = AddTask("High priority", R"(,"priority":9)");

  auto claim = Post("/api/v1/tasks/claim", R"({"agent":"alice","lease_seconds":60})");
  ASSERT_EQ(claim.status, 200) << claim.body;
  auto t = claim.Json();
  EXPECT_EQ(IdOf(t), high) << "the best ready task first";
  EXPECT_EQ(t.at("status"), json::value("active"));
  EXPECT_EQ(t.at("lease_owner"), json::value("alice"));
  EXPECT_EQ(t.at("assigned_agent"), json::value("alice"));
  ASSERT_TRUE(t.at("lease_expires_at").is_string());
  EXPECT_EQ(claim.Header("etag"), "\"" + std::to_string(t.at("version").as_int64()) + "\"");
  std::string first_expiry(t.at("lease_expires_at").as_string());

  // The owner extends the lease; anyone else is refused.
  auto beat =
      Post("/api/v1/tasks/" + high + "/heartbeat", R"({"agent":"alice","lease_seconds":600})");
  ASSERT_EQ(beat.status, 200) << beat.body;
  EXPECT_GT(std::string(beat.Json().at("lease_expires_at").as_string()), first_expiry);
  auto foreign_beat = Post("/api/v1/tasks/" + high + "/heartbeat", R"({"agent":"bob"})");
  ExpectProblem(foreign_beat, {403}, "heartbeat by a non-owner");
  EXPECT_EQ(foreign_beat.Json().at("lease_owner"), json::value("alice"));
  auto header_beat =
      Post("/api/v1/tasks/" + high + "/heartbeat", "{}", {{"X-DevStream-Agent", "bob"}});
  ExpectProblem(header_beat, {403}, "heartbeat by a non-owner named in the header");
  auto foreign_done =
      Post("/api/v1/tasks/" + high + "/transition", R"({"to":"completed","actor":"bob"})");
  ExpectProblem(foreign_done, {403}, "completion by a non-owner");
  auto anonymous_done = Post("/api/v1/tasks/" + high + "/transition", R"({"to":"completed"})");
  ExpectProblem(anonymous_done, {403}, "completion by nobody in particular");
  EXPECT_EQ(Task(high).at("status"), json::value("active"));

  // Bob claims the other task; an admin forces it (heartbeat and completion).
  auto bob = Post("/api/v1/tasks/claim", R"({"lease_seconds":60})", {{"X-DevStream-Agent", "bob"}});
  ASSERT_EQ(bob.status, 200) << bob.body;
  EXPECT_EQ(IdOf(bob.Json()), low);
  EXPECT_EQ(bob.Json().at("lease_owner"), json::value("bob"));
  auto forced_beat =
      Post("/api/v1/tasks/" + low + "/heartbeat", R"({"agent":"admin","force":true})");
  ASSERT_EQ(forced_beat.status, 200) << forced_beat.body;
  EXPECT_EQ(forced_beat.Json().at("lease_owner"), json::value("bob"));
  auto forced = Post("/api/v1/tasks/" + low + "/transition",
                     R"({"to":"completed","actor":"admin","force":true,"note":"unstuck"})");
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(forced.Json().at("status"), json::value("completed"));
  EXPECT_TRUE(forced.Json().at("lease_owner").is_null());
  auto low_events = Events(low);
  ASSERT_FALSE(low_events.empty());
  EXPECT_EQ(low_events.back().at("actor"), json::value("admin"));
  EXPECT_EQ(low_events.back().at("to"), json::value("completed"));
  std::string note(low_events.back().at("note").as_string());
  EXPECT_TRUE(Contains(note, "forced over the lease of bob")) << note;
  EXPECT_TRUE(Contains(note, "unstuck")) << note;

  // The owner completes its task; nothing is ready any more.
  auto done = Post("/api/v1/tasks/" + high + "/transition",
                   R"({"to":"completed","actor":"alice","note":"shipped"})");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_TRUE(done.Json().at("lease_owner").is_null());
  EXPECT_TRUE(done.Json().at("lease_expires_at").is_null());
  auto none = Post("/api/v1/tasks/claim", R"({"agent":"alice"})");
  EXPECT_EQ(none.status, 204) << none.body;
  EXPECT_TRUE(none.body.empty());
  ExpectProblem(Post("/api/v1/tasks/" + high + "/heartbeat", R"({"agent":"alice"})"), {409},
                "heartbeat on a completed task");
  ExpectProblem(Post("/api/v1/tasks/tsk_nope/heartbeat", R"({"agent":"alice"})"), {404},
                "heartbeat on an unknown task");

  auto ev = Events(high);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[1].at("from"), json::value("pending"));
  EXPECT_EQ(ev[1].at("to"), json::value("active"));
  EXPECT_EQ(ev[1].at("actor"), json::value("alice"));
  EXPECT_TRUE(Contains(std::string(ev[1].at("note").as_string()), "claimed with a 60 s lease"));
  EXPECT_EQ(ev[2].at("to"), json::value("completed"));
  EXPECT_EQ(ev[2].at("actor"), json::value("alice"));

  // A plan filter that names an unknown plan is a 404, not an empty claim.
  ExpectProblem(Post("/api/v1/tasks/claim", R"({"agent":"alice","plan_id":"pln_nope"})"), {404},
                "claim in an unknown plan");
}

TEST_F(TaskEngineTest, BadClaimAndHeartbeatInputsAreProblemsAndChangeNothing) {
  StartServer("api");
  MakePlan();
  std::string id = AddTask("Untouchable");
  auto claim_ok = Post("/api/v1/tasks/claim", R"({"agent":"owner","lease_seconds":600})");
  ASSERT_EQ(claim_ok.status, 200) << claim_ok.body;
  std::string other = AddTask("Still pending");
  const std::string before = DumpDatabase(db_);

  struct Case {
    std::string path, body, what;
    std::set<int> statuses;
  };
  const std::string claim = "/api/v1/tasks/claim";
  const std::string beat = "/api/v1/tasks/" + id + "/heartbeat";
  const std::vector<Case> cases = {
      {claim, "{}", "claim without an agent", {400, 422}},
      {claim, R"({"agent":""})", "claim with an empty agent", {400, 422}},
      {claim, R"({"agent":"x","lease_seconds":0})", "claim with lease 0", {400, 422}},
      {claim, R"({"agent":"x","lease_seconds":100000})", "claim with lease 100000", {400, 422}},
      {claim, R"({"agent":"x","lease_seconds":-5})", "claim with a negative lease", {400, 422}},
      {claim, R"({"agent":"x","lease_seconds":"60"})", "claim with a string lease", {400, 422}},
      {claim, R"({"agent":"x","lease_seconds":1.5})", "claim with a fractional lease", {400, 422}},
      {claim, R"({"agent":"x","priority":3})", "claim with an unknown field", {400, 422}},
      {claim, R"({"agent":"x")", "claim with invalid JSON", {400}},
      {claim, R"(["agent","x"])", "claim with a JSON array", {400, 422}},
      {claim, R"({"agent":7})", "claim with a numeric agent", {400, 422}},
      {claim + "?bogus=1", R"({"agent":"x"})", "claim with an unknown query parameter", {400, 422}},
      {claim + "?with_context=maybe", R"({"agent":"x"})", "claim with a bad flag", {400, 422}},
      {claim, R"({"agent":"x","plan_id":"pln_nope"})", "claim in an unknown plan", {404}},
      {beat, "{}", "heartbeat without an agent", {400, 422}},
      {beat, R"({"agent":"owner","lease_seconds":0})", "heartbeat with lease 0", {400, 422}},
      {beat,
       R"({"agent":"owner","lease_seconds":100000})",
       "heartbeat with lease 100000",
       {400, 422}},
      {beat, R"({"agent":"owner","extra":true})", "heartbeat with an unknown field", {400, 422}},
      {beat, R"({"agent":"owner","force":"yes"})", "heartbeat with a string force", {400, 422}},
      {beat, "not json", "heartbeat with invalid JSON", {400}},
      {beat, R"({"agent":"intruder","lease_seconds":60})", "heartbeat by a non-owner", {403}},
      {"/api/v1/tasks/" + other + "/heartbeat",
       R"({"agent":"owner"})",
       "heartbeat on a pending task",
       {409}},
  };
  for (const auto& c : cases) ExpectProblem(Post(c.path, c.body), c.statuses, c.what);
  // A request without a body at all.
  ExpectProblem(Http(server_->port(), "POST", claim, ""), {400, 422}, "claim without a body");

  EXPECT_EQ(DumpDatabase(db_), before) << "a rejected request changed data";
  EXPECT_EQ(Task(id).at("lease_owner"), json::value("owner"));
  EXPECT_EQ(Task(other).at("status"), json::value("pending"));
}

TEST_F(TaskEngineTest, ExpiredLeaseIsReapedBackToPendingOrFailed) {
  StartServer("all", {{"DEVSTREAM_SCHEDULE", "lease_reaper=1"}});
  MakePlan();
  std::string retried = AddTask("Will be retried");
  std::string exhausted = AddTask("No retries", R"(,"max_retries":0)");
  for (int i = 0; i < 2; ++i) {
    auto c = Post("/api/v1/tasks/claim", R"({"agent":"sleepy","lease_seconds":1})");
    ASSERT_EQ(c.status, 200) << c.body;
  }
  // A 1 s lease and a reaper every second: back within a few seconds.
  json::value a, b;
  bool reaped = WaitUntil(
      [&] {
        a = Task(retried);
        b = Task(exhausted);
        return a.at("status") == json::value("pending") && b.at("status") == json::value("failed");
      },
      milliseconds(6000));
  ASSERT_TRUE(reaped) << "not reaped within 6 s: " << json::serialize(a) << "\n"
                      << json::serialize(b);
  EXPECT_EQ(a.at("retry_count"), json::value(1));
  EXPECT_TRUE(a.at("lease_owner").is_null());
  EXPECT_TRUE(a.at("lease_expires_at").is_null());
  EXPECT_EQ(b.at("retry_count"), json::value(0));
  EXPECT_TRUE(Contains(std::string(b.at("error_log").as_string()), "no retries left"));

  auto ev = Events(retried);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().at("from"), json::value("active"));
  EXPECT_EQ(ev.back().at("to"), json::value("pending"));
  EXPECT_EQ(ev.back().at("actor"), json::value("lease-reaper"));
  std::string note(ev.back().at("note").as_string());
  EXPECT_TRUE(Contains(note, "lease of sleepy expired")) << note;
  EXPECT_EQ(Events(exhausted).back().at("actor"), json::value("lease-reaper"));

  // The reaper ran as a job of its own, and the task can be claimed again.
  auto reapers = Get("/api/v1/jobs?kind=lease_reaper&state=done").Json();
  EXPECT_FALSE(reapers.at("items").as_array().empty());
  auto again = Post("/api/v1/tasks/claim", R"({"agent":"awake"})");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(IdOf(again.Json()), retried);
}

// ------------------------------------------------------ tasks and memory ---

TEST_F(TaskEngineTest, CompletionStoresOutputMemoryAndTaskShowsContext) {
  StartServer("api");
  auto decision = Post("/api/v1/memories",
                       R"({"content":"Decision: OAuth token refresh uses a sliding window of)"
                       R"( 15 minutes so idle sessions expire","content_type":"decision",)"
                       R"("keywords":["oauth","token","refresh"]})");
  ASSERT_EQ(decision.status, 201) << decision.body;
  int64_t decision_id = decision.Json().at("id").as_int64();
  ASSERT_EQ(Post("/api/v1/memories",
                 R"({"content":"Makefiles need tab indentation","content_type":"learning"})")
                .status,
            201);
  MakePlan();
  std::string id = AddTask("Implement OAuth token refresh",
                           R"(,"description":"Refresh tokens with a sliding window",)"
                           R"("task_type":"coding","output_files":["src/auth/refresh.cpp"],)"
                           R"("acceptance_criteria":["idle sessions expire"])");
  std::string research = AddTask("Research token lifetimes", R"(,"task_type":"research")");

  auto context_ids = [](const json::value& task) {
    std::set<int64_t> ids;
    for (const auto& m : task.at("context").as_array()) ids.insert(m.at("id").as_int64());
    return ids;
  };
  EXPECT_FALSE(Task(id).as_object().contains("context"));
  auto shown = Get("/api/v1/tasks/" + id + "?with_context=1");
  ASSERT_EQ(shown.status, 200) << shown.body;
  ASSERT_TRUE(shown.Json().as_object().contains("context")) << shown.body;
  EXPECT_TRUE(context_ids(shown.Json()).count(decision_id)) << shown.body;
  EXPECT_EQ(Get("/api/v1/tasks/" + id + "?with_context=1&context_limit=1")
                .Json()
                .at("context")
                .as_array()
                .size(),
            1u);
  ExpectProblem(Get("/api/v1/tasks/" + id + "?with_context=1&context_limit=0"), {400, 422},
                "context_limit 0");

  // Claiming with context hands the agent the same memories.
  auto claim = Post("/api/v1/tasks/claim?with_context=1", R"({"agent":"coder"})");
  ASSERT_EQ(claim.status, 200) << claim.body;
  ASSERT_EQ(IdOf(claim.Json()), id);
  EXPECT_TRUE(context_ids(claim.Json()).count(decision_id)) << claim.body;

  auto done = Post("/api/v1/tasks/" + id + "/transition",
                   R"({"to":"completed","actor":"coder","note":"Refresh ships with a 15 minute)"
                   R"( window"})");
  ASSERT_EQ(done.status, 200) << done.body;
  auto linked = Get("/api/v1/memories?task_id=" + id);
  ASSERT_EQ(linked.status, 200) << linked.body;
  auto items = linked.Json().at("items").as_array();
  ASSERT_EQ(items.size(), 1u) << linked.body;
  const auto& m = items[0];
  EXPECT_EQ(m.at("content_type"), json::value("output"));
  EXPECT_EQ(m.at("source"), json::value("engine"));
  EXPECT_EQ(m.at("task_id"), json::value(id));
  EXPECT_EQ(m.at("plan_id"), json::value(plan_));
  std::string content(m.at("content").as_string());
  EXPECT_TRUE(Contains(content, "Task completed: Implement OAuth token refresh")) << content;
  EXPECT_TRUE(Contains(content, "Outcome: Refresh ships with a 15 minute window")) << content;
  EXPECT_TRUE(Contains(content, "src/auth/refresh.cpp")) << content;
  int64_t own = m.at("id").as_int64();

  // The task's own completion memory is not context for it; the decision is.
  auto after = Get("/api/v1/tasks/" + id + "?with_context=true").Json();
  auto ids = context_ids(after);
  EXPECT_FALSE(ids.count(own));
  EXPECT_TRUE(ids.count(decision_id));

  // Research tasks leave a learning instead.
  ASSERT_EQ(Post("/api/v1/tasks/" + research + "/transition", R"({"to":"active"})").status, 200);
  ASSERT_EQ(Post("/api/v1/tasks/" + research + "/transition", R"({"to":"completed"})").status, 200);
  auto learned = Get("/api/v1/memories?task_id=" + research).Json().at("items").as_array();
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_EQ(learned[0].at("content_type"), json::value("learning"));
}

// ------------------------------------------------------------------ jobs ---

TEST_F(TaskEngineTest, BackupJobRunsAndFailingJobGoesDeadThenRetries) {
  StartServer("all", {{"DEVSTREAM_JOB_BACKOFF_MS", "0"}, {"DEVSTREAM_WORKER_POLL_MS", "50"}});
  MakePlan();
  for (int i = 0; i < 3; ++i) AddTask("Backed up " + std::to_string(i));
  const std::string backup = db_ + ".backups/b.db";

  auto created = Post("/api/v1/jobs", R"({"kind":"backup","payload":{"name":"b.db"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Json().at("deduplicated"), json::value(false));
  EXPECT_EQ(created.Json().at("kind"), json::value("backup"));
  std::string job = IdOf(created.Json());
  auto finished = WaitForJob(job, "done");
  ASSERT_EQ(finished.at("state"), json::value("done")) << json::serialize(finished);
  EXPECT_EQ(finished.at("attempts"), json::value(1));
  EXPECT_TRUE(finished.at("finished_at").is_string());
  EXPECT_TRUE(finished.at("lease_owner").is_null());
  EXPECT_TRUE(finished.at("last_error").is_null());

  auto check = QueryDatabase(backup, "PRAGMA integrity_check");
  ASSERT_EQ(check.size(), 1u);
  EXPECT_EQ(check[0][0], "ok");
  auto tasks = QueryDatabase(backup, "SELECT count(*) FROM micro_tasks");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0][0], "3");
  EXPECT_EQ(QueryDatabase(backup, "SELECT count(*) FROM micro_tasks"),
            QueryDatabase(db_, "SELECT count(*) FROM micro_tasks"));

  // A backup whose scratch file cannot be created (a non-empty directory is
  // in its way): two attempts, then the dead letter with the error kept.
  std::filesystem::create_directories(db_ + ".backups/doomed.db.partial/in-the-way");
  std::string doomed =
      EnqueueJob(R"({"kind":"backup","max_attempts":2,"payload":{"name":"doomed.db"}})");
  auto dead = WaitForJob(doomed, "dead");
  ASSERT_EQ(dead.at("state"), json::value("dead")) << json::serialize(dead);
  EXPECT_EQ(dead.at("attempts"), json::value(2));
  EXPECT_EQ(dead.at("max_attempts"), json::value(2));
  ASSERT_TRUE(dead.at("last_error").is_string());
  EXPECT_TRUE(Contains(std::string(dead.at("last_error").as_string()), "creating"))
      << dead.at("last_error");
  auto dead_list = Get("/api/v1/jobs?state=dead").Json().at("items").as_array();
  ASSERT_EQ(dead_list.size(), 1u);
  EXPECT_EQ(IdOf(dead_list[0]), doomed);

  auto retried = Post("/api/v1/jobs/" + doomed + "/retry", "");
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(retried.Json().at("attempts"), json::value(0));
  EXPECT_TRUE(retried.Json().at("state") == json::value("queued") ||
              retried.Json().at("state") == json::value("running"))
      << retried.body;
  auto dead_again = WaitForJob(doomed, "dead");
  EXPECT_EQ(dead_again.at("state"), json::value("dead")) << json::serialize(dead_again);
  EXPECT_EQ(dead_again.at("attempts"), json::value(2));

  ExpectProblem(Post("/api/v1/jobs/" + job + "/retry", ""), {409}, "retrying a done job");
  ExpectProblem(Post("/api/v1/jobs/job_nope/retry", ""), {404}, "retrying an unknown job");
  ExpectProblem(Get("/api/v1/jobs/job_nope"), {404}, "an unknown job");
  auto backups = Get("/api/v1/jobs?kind=backup").Json().at("items").as_array();
  EXPECT_EQ(backups.size(), 2u);
  ExpectProblem(Get("/api/v1/jobs?state=sleeping"), {400, 422}, "an unknown state filter");
  ExpectProblem(Post("/api/v1/jobs", R"({"kind":"frobnicate"})"), {400, 422}, "an unknown kind");
  ExpectProblem(Post("/api/v1/jobs", R"({"payload":{}})"), {400, 422}, "no kind");
  ExpectProblem(Post("/api/v1/jobs", R"({"kind":"backup","payload":[1]})"), {400, 422},
                "a payload that is not an object");
  ExpectProblem(Post("/api/v1/jobs", R"({"kind":"backup","max_attempts":0})"), {400, 422},
                "max_attempts 0");
  ExpectProblem(Post("/api/v1/jobs", R"({"kind":"backup","when":"now"})"), {400, 422},
                "an unknown field");
  ExpectProblem(Post("/api/v1/jobs", R"({"kind":)"), {400}, "invalid JSON");
  EXPECT_EQ(Get("/api/v1/jobs?kind=backup").Json().at("items").as_array().size(), 2u);
}

TEST_F(TaskEngineTest, WorkerProcessRunsJobsAndHealthFollowsIt) {
  StartServer("api");
  auto health = Get("/health");
  ASSERT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.Json().at("status"), json::value("degraded"));
  EXPECT_EQ(health.Json().at("components").at("tasks").at("status"), json::value("degraded"));
  EXPECT_EQ(health.Json().at("components").at("tasks").at("workers"), json::value(0));
  EXPECT_EQ(health.Json().at("components").at("database").at("status"), json::value("healthy"));

  BackgroundProcess worker({"worker", "--db", db_}, dir_ + "/worker.log",
                           {{"DEVSTREAM_WORKER_POLL_MS", "50"}});
  ASSERT_TRUE(worker.Start("DevStream worker")) << worker.Stderr();
  EXPECT_TRUE(Contains(worker.Stdout(), "running")) << worker.Stdout();
  json::value h;
  ASSERT_TRUE(WaitUntil(
      [&] {
        h = Get("/health").Json();
        return h.is_object() &&
               h.at("components").at("tasks").at("status") == json::value("healthy");
      },
      milliseconds(5000)))
      << json::serialize(h);
  EXPECT_EQ(h.at("status"), json::value("healthy"));
  EXPECT_EQ(h.at("components").at("tasks").at("workers"), json::value(1));
  auto rows = QueryDatabase(db_, "SELECT pid, mode FROM workers");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], std::to_string(worker.pid()));
  EXPECT_EQ(rows[0][1], "task_engine");

  // The API server (mode api) runs no jobs: the worker process does.
  std::string job = EnqueueJob(R"({"kind":"backup","payload":{"name":"w.db"}})");
  auto done = WaitForJob(job, "done");
  ASSERT_EQ(done.at("state"), json::value("done")) << json::serialize(done);
  EXPECT_TRUE(Contains(worker.Stderr(), "backup written to " + db_ + ".backups/w.db"))
      << worker.Stderr();
  EXPECT_EQ(QueryDatabase(db_ + ".backups/w.db", "PRAGMA integrity_check")[0][0], "ok");
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto r = QueryDatabase(db_, "SELECT jobs_done >= 1 FROM workers");
        return !r.empty() && r[0][0] == "1";
      },
      milliseconds(5000)))
      << "the worker's row does not count the jobs it ran";

  auto t0 = Clock::now();
  EXPECT_EQ(worker.Stop(10000), 0) << worker.Stderr();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(secs, 5.0) << "SIGTERM took " << secs << " s";
  EXPECT_TRUE(QueryDatabase(db_, "SELECT id FROM workers").empty())
      << "the stopped worker left its row";
  auto after = Get("/health").Json();
  EXPECT_EQ(after.at("components").at("tasks").at("status"), json::value("degraded"));
  EXPECT_EQ(after.at("status"), json::value("degraded"));
}

TEST_F(TaskEngineTest, JobOfKilledWorkerIsRunAgainAfterItsLeaseExpires) {
  StartServer("api");
  // A database big enough that a backup of it takes a while.
  {
    TestDb filler(db_);
    ASSERT_TRUE(filler.ok());
    ASSERT_EQ(filler.Exec("CREATE TABLE itest_filler(b BLOB);"
                          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                          " WHERE x < 32) INSERT INTO itest_filler SELECT zeroblob(1048576)"
                          " FROM c;"),
              "");
  }
  const EnvVars timing = {{"DEVSTREAM_JOB_LEASE_MS", "1000"},
                          {"DEVSTREAM_WORKER_HEARTBEAT_MS", "300"},
                          {"DEVSTREAM_WORKER_POLL_MS", "50"},
                          {"DEVSTREAM_SCHEDULE", "lease_reaper=1"}};
  BackgroundProcess first({"worker", "--db", db_}, dir_ + "/first.log", timing);
  ASSERT_TRUE(first.Start("DevStream worker")) << first.Stderr();
  std::string out = first.Stdout();
  size_t at = out.find("DevStream worker ") + std::strlen("DevStream worker ");
  const std::string first_id = out.substr(at, out.find(' ', at) - at);
  ASSERT_EQ(first_id.rfind("wkr", 0), 0u) << out;

  const std::string backup = db_ + ".backups/k.db";
  std::string job = EnqueueJob(R"({"kind":"backup","payload":{"name":"k.db"}})");
  // Catch the job while it runs, freeze the database (our write lock keeps
  // the worker from finishing it), and kill the worker.
  TestDb lock(db_);
  ASSERT_TRUE(lock.ok());
  const std::string state_sql =
      "SELECT state || ' ' || coalesce(lease_owner, '-') FROM jobs"
      " WHERE id = '" +
      job + "'";
  std::string seen;
  ASSERT_TRUE(WaitUntil(
      [&] {
        seen = lock.Scalar(state_sql);
        return seen.rfind("running", 0) == 0 || seen.rfind("done", 0) == 0;
      },
      milliseconds(20000), milliseconds(1)))
      << seen;
  ASSERT_EQ(lock.Exec("BEGIN IMMEDIATE"), "");
  seen = lock.Scalar(state_sql);
  if (seen == "running " + first_id) first.Kill();
  EXPECT_EQ(lock.Exec("ROLLBACK"), "");
  ASSERT_EQ(seen, "running " + first_id)
      << "the job was not caught running in the first worker (finished too fast?)";
  ASSERT_FALSE(first.running());

  // A second worker's lease reaper re-queues the job once its lease expired,
  // and runs it to completion.
  BackgroundProcess second({"worker", "--db", db_}, dir_ + "/second.log", timing);
  ASSERT_TRUE(second.Start("DevStream worker")) << second.Stderr();
  auto done = WaitForJob(job, "done", milliseconds(30000));
  ASSERT_EQ(done.at("state"), json::value("done")) << json::serialize(done);
  EXPECT_EQ(done.at("attempts"), json::value(2));
  EXPECT_TRUE(done.at("lease_owner").is_null());
  EXPECT_TRUE(Contains(second.Stderr(), "backup written to " + backup)) << second.Stderr();
  EXPECT_EQ(QueryDatabase(backup, "PRAGMA integrity_check")[0][0], "ok");
  EXPECT_EQ(QueryDatabase(backup, "SELECT count(*) FROM itest_filler")[0][0], "32");
  EXPECT_EQ(second.Stop(10000), 0) << second.Stderr();
}

TEST_F(TaskEngineTest, SchedulerEnqueuesEachDueTimeOnceAcrossTwoWorkers) {
  const EnvVars env = {{"DEVSTREAM_SCHEDULE", "lease_reaper=1,rollup=1"}};
  auto t0 = Clock::now();
  BackgroundProcess w1({"worker", "--db", db_}, dir_ + "/w1.log", env);
  ASSERT_TRUE(w1.Start("DevStream worker")) << w1.Stderr();
  BackgroundProcess w2({"worker", "--db", db_}, dir_ + "/w2.log", env);
  ASSERT_TRUE(w2.Start("DevStream worker")) << w2.Stderr();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(w1.Stop(10000), 0) << w1.Stderr();
  EXPECT_EQ(w2.Stop(10000), 0) << w2.Stderr();
  double window = std::chrono::duration<double>(Clock::now() - t0).count();

  auto rows = QueryDatabase(db_,
                            "SELECT kind, created_at, state, id FROM jobs WHERE kind IN"
                            " ('rollup','lease_reaper') ORDER BY kind, created_at, id");
  std::map<std::string, std::vector<std::vector<std::string>>> by_kind;
  for (auto& r : rows) {
    ASSERT_EQ(r.size(), 4u) << r[0];
    by_kind[r[0]].push_back(r);
  }
  for (const char* kind_name : {"lease_reaper", "rollup"}) {
    const std::string kind = kind_name;
    const auto& jobs = by_kind[kind];
    // lease_reaper is due at start, rollup one interval after; either way
    // at least two due times pass in four seconds, and at most one a second.
    EXPECT_GE(jobs.size(), 2u) << kind;
    EXPECT_LE(static_cast<double>(jobs.size()), window + 1) << kind << " in " << window << " s";
    // One job per due time: never two within an interval (a duplicate), and
    // none skipped (each due time comes an interval after the previous job,
    // and some worker ticks within about a second of it).
    for (size_t i = 1; i < jobs.size(); ++i) {
      int64_t gap = TimestampMillis(jobs[i][1]) - TimestampMillis(jobs[i - 1][1]);
      EXPECT_GE(gap, 950) << kind << " enqueued twice for one due time: " << jobs[i - 1][1]
                          << " and " << jobs[i][1];
      EXPECT_LE(gap, 3000) << kind << " skipped a due time between " << jobs[i - 1][1] << " and "
                           << jobs[i][1];
    }
    int done = 0;
    for (const auto& j : jobs) done += j[2] == "done";
    EXPECT_GE(done + 1, static_cast<int>(jobs.size())) << kind << " jobs were left unrun";
    auto schedule = QueryDatabase(
        db_, "SELECT interval_ms, last_job_id FROM job_schedules WHERE kind = '" + kind + "'");
    ASSERT_EQ(schedule.size(), 1u) << kind;
    EXPECT_EQ(schedule[0][0], "1000");
    ASSERT_FALSE(jobs.empty());
    EXPECT_EQ(schedule[0][1], jobs.back()[3]) << kind << ": the last due time made the last job";
  }
}

// -------------------------------------------------------------- sessions ---

TEST_F(TaskEngineTest, SessionsStartResumeEndAndSummarise) {
  StartServer();
  auto started = Post("/api/v1/sessions", R"({"agent":"claude","external_id":"ext-42"})");
  ASSERT_EQ(started.status, 201) << started.body;
  std::string session = IdOf(started.Json());
  ASSERT_EQ(session.rfind("ses", 0), 0u) << started.body;
  EXPECT_EQ(started.Json().at("status"), json::value("active"));
  auto resumed = Post("/api/v1/sessions", R"({"agent":"claude","external_id":"ext-42"})");
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_EQ(IdOf(resumed.Json()), session);
  EXPECT_EQ(IdOf(Get("/api/v1/sessions/ext-42").Json()), session);

  MakePlan();
  std::string task = AddTask("Wire the login form", R"(,"output_files":["web/login.tsx"])");
  auto claim = Post("/api/v1/tasks/claim", R"({"agent":"claude"})");
  ASSERT_EQ(claim.status, 200) << claim.body;
  ASSERT_EQ(Post("/api/v1/tasks/" + task + "/transition",
                 R"({"to":"completed","actor":"claude","note":"form posts to /login"})")
                .status,
            200);
  auto decision =
      Post("/api/v1/memories", R"({"content":"Decided to keep sessions in signed cookies",)"
                               R"("content_type":"decision"})");
  ASSERT_EQ(decision.status, 201) << decision.body;

  auto ended = Post("/api/v1/sessions/" + session + "/end", "");
  ASSERT_EQ(ended.status, 200) << ended.body;
  EXPECT_EQ(ended.Json().at("status"), json::value("ended"));
  ASSERT_TRUE(ended.Json().at("ended_at").is_string());
  auto again = Post("/api/v1/sessions/" + session + "/end", "{}");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.Json().at("ended_at"), ended.Json().at("ended_at"));

  auto latest = Get("/api/v1/sessions/latest");
  ASSERT_EQ(latest.status, 200) << latest.body;
  EXPECT_EQ(IdOf(latest.Json()), session);
  std::string summary(latest.Json().at("summary").as_string());
  EXPECT_TRUE(Contains(summary, "# Session summary: " + session)) << summary;
  EXPECT_TRUE(Contains(summary, "Wire the login form")) << summary;
  EXPECT_TRUE(Contains(summary, task)) << summary;
  EXPECT_TRUE(Contains(summary, "form posts to /login")) << summary;
  EXPECT_TRUE(Contains(summary, "web/login.tsx")) << summary;
  EXPECT_TRUE(Contains(summary, "Decided to keep sessions in signed cookies")) << summary;
  EXPECT_TRUE(latest.Json().at("summary_memory_id").is_int64()) << latest.body;
  auto shown = Get("/api/v1/sessions/" + session);
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(shown.Json().at("status"), json::value("ended"));
  // The summary is a memory linked to the session.
  auto mem = Get("/api/v1/memories?session_id=" + session).Json().at("items").as_array();
  ASSERT_FALSE(mem.empty());
  EXPECT_EQ(mem[0].at("content_type"), json::value("context"));

  ExpectProblem(Get("/api/v1/sessions/ses_nope"), {404}, "an unknown session");
  ExpectProblem(Post("/api/v1/sessions/ses_nope/end", ""), {404}, "ending an unknown session");
  ExpectProblem(Post("/api/v1/sessions/" + session + "/end", R"({"force":true})"), {400, 422},
                "ending with an unknown field");
  ExpectProblem(Post("/api/v1/sessions", R"({"agent":"claude","bogus":1})"), {400, 422},
                "a session with an unknown field");
  ExpectProblem(Get("/api/v1/sessions/latest?project=nowhere"), {404},
                "latest of a project without sessions");
}

// ------------------------------------------------------------------- CLI ---

TEST_F(TaskEngineTest, CliClaimJobsAndSessions) {
  auto empty = Cli({"task", "claim", "--agent", "bot"});
  EXPECT_EQ(empty.exit_code, 3) << empty.err;
  EXPECT_TRUE(Contains(empty.err, "no task is ready")) << empty.err;
  auto empty_json = Cli({"--json", "task", "claim", "--agent", "bot"});
  EXPECT_EQ(empty_json.exit_code, 3) << empty_json.err;
  EXPECT_EQ(empty_json.out, "null\n");
  EXPECT_EQ(Cli({"task", "claim"}).exit_code, 2) << "--agent is required";
  EXPECT_EQ(Cli({"task", "claim", "--agent", "bot", "--lease", "0"}).exit_code, 2);

  auto parse = [](const CommandResult& r) {
    json::error_code ec;
    json::value v = json::parse(r.out, ec);
    return ec ? json::value() : v;
  };
  auto session = Cli({"--json", "session", "start", "--agent", "bot", "--external-id", "cli-1"});
  ASSERT_EQ(session.exit_code, 0) << session.err;
  std::string session_id = IdOf(parse(session));
  ASSERT_FALSE(session_id.empty()) << session.out;
  auto resumed = Cli({"--json", "session", "start", "--agent", "bot", "--external-id", "cli-1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(IdOf(parse(resumed)), session_id);

  auto plan = Cli({"--json", "plan", "create", "--title", "CLI engine"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto phase = Cli({"--json", "phase", "create", IdOf(parse(plan)), "--name", "Work"});
  ASSERT_EQ(phase.exit_code, 0) << phase.err;
  auto task = Cli({"--json", "task", "create", IdOf(parse(phase)), "--title", "Tidy the CLI"});
  ASSERT_EQ(task.exit_code, 0) << task.err;
  std::string task_id = IdOf(parse(task));

  auto claimed = Cli({"--json", "task", "claim", "--agent", "bot", "--lease", "120"});
  ASSERT_EQ(claimed.exit_code, 0) << claimed.err;
  EXPECT_EQ(IdOf(parse(claimed)), task_id);
  EXPECT_EQ(parse(claimed).at("lease_owner"), json::value("bot"));
  auto stolen = Cli({"task", "heartbeat", task_id, "--agent", "thief"});
  EXPECT_EQ(stolen.exit_code, 1) << stolen.err;
  EXPECT_TRUE(Contains(stolen.err, "leased to bot")) << stolen.err;
  EXPECT_EQ(Cli({"task", "heartbeat", task_id, "--agent", "bot", "--lease", "600"}).exit_code, 0);
  EXPECT_EQ(Cli({"task", "claim", "--agent", "bot"}).exit_code, 3) << "the only task is taken";
  auto completed = Cli({"task", "transition", task_id, "completed", "--actor", "bot"});
  ASSERT_EQ(completed.exit_code, 0) << completed.err;

  auto ended = Cli({"--json", "session", "end", session_id});
  ASSERT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_EQ(parse(ended).at("status"), json::value("ended"));
  EXPECT_EQ(Cli({"session", "end", session_id}).exit_code, 0) << "ending twice is fine";
  auto latest = Cli({"session", "latest"});
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_TRUE(Contains(latest.out, "# Session summary: " + session_id)) << latest.out;
  EXPECT_TRUE(Contains(latest.out, "Tidy the CLI")) << latest.out;
  auto latest_json = Cli({"--json", "session", "latest"});
  ASSERT_EQ(latest_json.exit_code, 0) << latest_json.err;
  EXPECT_EQ(IdOf(parse(latest_json)), session_id);
  EXPECT_EQ(Cli({"session", "show", "ses_nope"}).exit_code, 1);

  // Ending the session queued its summary job; a backup joins it.
  const std::string backup = db_ + ".backups/cli-backup.db";
  auto enq =
      Cli({"--json", "jobs", "enqueue", "backup", "--payload", R"({"name":"cli-backup.db"})"});
  ASSERT_EQ(enq.exit_code, 0) << enq.err;
  std::string job = IdOf(parse(enq));
  EXPECT_EQ(parse(enq).at("state"), json::value("queued"));
  auto list = Cli({"--json", "jobs", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::map<std::string, std::string> kinds;  // id -> kind
  const json::value listed = parse(list);
  for (const auto& j : listed.at("items").as_array()) {
    kinds[IdOf(j)] = std::string(j.at("kind").as_string());
  }
  EXPECT_EQ(kinds[job], "backup");
  EXPECT_EQ(std::count_if(kinds.begin(), kinds.end(),
                          [](const auto& kv) { return kv.second == "session_summary"; }),
            1);
  auto queued = Cli({"--json", "jobs", "list", "--state", "queued"});
  ASSERT_EQ(queued.exit_code, 0);
  EXPECT_EQ(parse(queued).at("items").as_array().size(), kinds.size());
  EXPECT_EQ(Cli({"jobs", "list", "--state", "sleeping"}).exit_code, 2);
  EXPECT_EQ(Cli({"jobs", "enqueue", "frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cli({"jobs", "enqueue", "backup", "--payload", "[1]"}).exit_code, 2);

  auto ran = Cli({"jobs", "run-once"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_TRUE(Contains(ran.out, "ran " + std::to_string(kinds.size()) + " job(s)")) << ran.out;
  auto shown = Cli({"--json", "jobs", "show", job});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(parse(shown).at("state"), json::value("done"));
  EXPECT_EQ(QueryDatabase(backup, "PRAGMA integrity_check")[0][0], "ok");
  EXPECT_TRUE(Contains(Cli({"jobs", "run-once"}).out, "ran 0 job(s)"));
  auto retry_done = Cli({"jobs", "retry", job});
  EXPECT_EQ(retry_done.exit_code, 1) << retry_done.err;
  EXPECT_TRUE(Contains(retry_done.err, "only dead or failed jobs")) << retry_done.err;
  EXPECT_TRUE(QueryDatabase(db_, "SELECT id FROM workers").empty())
      << "run-once left its worker row";
}

}  // namespace
}  // namespace ds::itest
