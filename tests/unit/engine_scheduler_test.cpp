// Scheduler against a real migrated SQLite file: exactly-once enqueueing per
// due time across threads and across two Database objects on one file (two
// "processes"), disabled kinds, run_at_start, interval changes, and the
// DEVSTREAM_SCHEDULE parser (DefaultSchedules).
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "test_util.h"

namespace ds::engine {
namespace {

using std::chrono::milliseconds;

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

int64_t JobsOfKind(Database& db, const std::string& kind) {
  return QueryInt(db, "SELECT count(*) FROM jobs WHERE kind = '" + kind + "'");
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb(&path_);
    ASSERT_TRUE(db_);
  }

  // Ticks `schedulers` concurrently: `threads_per` threads each, `ticks` each.
  // Returns how many job ids the ticks reported created, per kind.
  std::map<std::string, int> TickConcurrently(std::vector<Scheduler*> schedulers, int threads_per,
                                              int ticks) {
    std::mutex mu;
    std::map<std::string, int> created;
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (Scheduler* s : schedulers) {
      for (int t = 0; t < threads_per; ++t) {
        threads.emplace_back([&, s] {
          while (!go) std::this_thread::yield();
          for (int i = 0; i < ticks; ++i) {
            auto r = s->Tick();
            if (!r.ok()) {
              ADD_FAILURE() << r.status().ToString();
              return;
            }
            std::lock_guard<std::mutex> lock(mu);
            for (const auto& id : *r) {
              std::string kind = QueryText(*db_, "SELECT kind FROM jobs WHERE id = '" + id + "'");
              ++created[kind];
            }
          }
        });
      }
    }
    go = true;
    for (auto& th : threads) th.join();
    return created;
  }

  std::string path_;
  std::unique_ptr<Database> db_;
};

TEST_F(SchedulerTest, ConcurrentTicksAcrossTwoDatabasesEnqueueOncePerDueTime) {
  auto db2 = Database::Open(path_, {});
  ASSERT_TRUE(db2.ok()) << db2.status().ToString();
  std::vector<Schedule> schedules = {{"lease_reaper", 3'600'000, true, 3},
                                     {"rollup", 3'600'000, false, 3},
                                     {"retention", 3'600'000, true, 4},
                                     {"backup", 0, true, 3}};
  Scheduler a(*db_, schedules);
  Scheduler b(**db2, schedules);

  // Round 1: the run_at_start kinds are due at once, exactly once.
  auto created = TickConcurrently({&a, &b}, 3, 15);
  EXPECT_EQ(JobsOfKind(*db_, "lease_reaper"), 1);
  EXPECT_EQ(JobsOfKind(*db_, "retention"), 1);
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 0);  // first due one interval from now
  EXPECT_EQ(JobsOfKind(*db_, "backup"), 0);  // disabled
  EXPECT_EQ(created["lease_reaper"], 1);
  EXPECT_EQ(created["retention"], 1);
  EXPECT_EQ(created.count("rollup"), 0u);
  // The schedule rows say when each is next due.
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM job_schedules"), 3);
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM job_schedules WHERE kind = 'backup'"), 0);
  std::string next = QueryText(*db_, "SELECT next_run_at FROM job_schedules WHERE kind = 'rollup'");
  auto next_ms = ParseTimestamp(next);
  ASSERT_TRUE(next_ms) << next;
  EXPECT_GT(*next_ms, NowMillis() + 3'500'000);
  EXPECT_EQ(QueryInt(*db_, "SELECT max_attempts FROM jobs WHERE kind = 'retention'"), 4);
  EXPECT_EQ(QueryText(*db_, "SELECT dedup_key FROM jobs WHERE kind = 'lease_reaper'"),
            "schedule:lease_reaper");
  std::string last_job =
      QueryText(*db_, "SELECT last_job_id FROM job_schedules WHERE kind = 'lease_reaper'");
  EXPECT_EQ(last_job, QueryText(*db_, "SELECT id FROM jobs WHERE kind = 'lease_reaper'"));

  // Round 2: the first jobs ran; every kind becomes due again (time moved on).
  ASSERT_TRUE(Exec(*db_, "UPDATE jobs SET state = 'done', finished_at = updated_at").ok());
  ASSERT_TRUE(Exec(*db_, "UPDATE job_schedules SET next_run_at = '2001-01-01T00:00:00.000Z'").ok());
  created = TickConcurrently({&a, &b}, 3, 15);
  EXPECT_EQ(JobsOfKind(*db_, "lease_reaper"), 2);
  EXPECT_EQ(JobsOfKind(*db_, "retention"), 2);
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 1);
  EXPECT_EQ(JobsOfKind(*db_, "backup"), 0);
  EXPECT_EQ(created["lease_reaper"], 1);
  EXPECT_EQ(created["rollup"], 1);
  EXPECT_EQ(created["retention"], 1);
  // Each kind's next due time moved an interval ahead.
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM job_schedules WHERE next_run_at < '" +
                               NowTimestamp() + "'"),
            0);
}

TEST_F(SchedulerTest, DueKindWhoseJobIsStillQueuedIsNotDuplicated) {
  Scheduler s(*db_, {{"lease_reaper", 3'600'000, true, 3}});
  auto first = s.Tick();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // Due again while the first job is still queued: the dedup key joins it.
  ASSERT_TRUE(Exec(*db_, "UPDATE job_schedules SET next_run_at = '2001-01-01T00:00:00.000Z'").ok());
  auto second = s.Tick();
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->empty());
  EXPECT_EQ(JobsOfKind(*db_, "lease_reaper"), 1);
  // The schedule still moved forward.
  EXPECT_GT(QueryText(*db_, "SELECT next_run_at FROM job_schedules WHERE kind = 'lease_reaper'"),
            NowTimestamp());
}

TEST_F(SchedulerTest, ZeroIntervalIsNeverEnqueued) {
  Scheduler s(*db_, {{"backup", 0, true, 3}, {"rollup", 0, false, 3}});
  for (int i = 0; i < 5; ++i) {
    auto r = s.Tick();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->empty());
  }
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM jobs"), 0);
  EXPECT_EQ(QueryInt(*db_, "SELECT count(*) FROM job_schedules"), 0);
}

TEST_F(SchedulerTest, NonStartKindIsDueOnlyAfterOneInterval) {
  constexpr int64_t kInterval = 300;
  Scheduler s(*db_, {{"rollup", kInterval, false, 3}, {"lease_reaper", 60'000, true, 3}});
  int64_t before = NowMillis();
  auto r = s.Tick();
  int64_t after = NowMillis();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(JobsOfKind(*db_, "lease_reaper"), 1);
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 0);
  auto next = ParseTimestamp(
      QueryText(*db_, "SELECT next_run_at FROM job_schedules WHERE kind = 'rollup'"));
  ASSERT_TRUE(next);
  EXPECT_GE(*next, before + kInterval);
  EXPECT_LE(*next, after + kInterval);
  ASSERT_TRUE(s.Tick().ok());
  if (NowMillis() < before + kInterval) {  // (unless this machine stalled that long)
    EXPECT_EQ(JobsOfKind(*db_, "rollup"), 0);
  }
  std::this_thread::sleep_for(milliseconds(kInterval + 50));
  r = s.Tick();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 1);
  EXPECT_EQ(JobsOfKind(*db_, "lease_reaper"), 1);  // its interval has not passed
}

TEST_F(SchedulerTest, ShorterIntervalTakesEffectAtOnce) {
  {
    Scheduler slow(*db_, {{"rollup", 3'600'000, false, 3}});
    ASSERT_TRUE(slow.Tick().ok());
  }
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 0);
  // A restart with a 100 ms interval need not wait for the old hour.
  Scheduler fast(*db_, {{"rollup", 100, false, 3}});
  ASSERT_TRUE(fast.Tick().ok());
  EXPECT_EQ(QueryInt(*db_, "SELECT interval_ms FROM job_schedules WHERE kind = 'rollup'"), 100);
  std::this_thread::sleep_for(milliseconds(150));
  ASSERT_TRUE(fast.Tick().ok());
  EXPECT_EQ(JobsOfKind(*db_, "rollup"), 1);
}

TEST(DefaultSchedulesTest, DefaultsAndOverrides) {
  auto d = DefaultSchedules();
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::map<std::string, Schedule> by_kind;
  for (const auto& s : *d) by_kind[s.kind] = s;
  ASSERT_EQ(by_kind.size(), 4u);
  EXPECT_EQ(by_kind["lease_reaper"].interval_ms, 15'000);
  EXPECT_TRUE(by_kind["lease_reaper"].run_at_start);
  EXPECT_EQ(by_kind["rollup"].interval_ms, 600'000);
  EXPECT_FALSE(by_kind["rollup"].run_at_start);
  EXPECT_EQ(by_kind["retention"].interval_ms, 86'400'000);
  EXPECT_EQ(by_kind["backup"].interval_ms, 86'400'000);

  auto o = DefaultSchedules("backup=0,rollup=5");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  by_kind.clear();
  for (const auto& s : *o) by_kind[s.kind] = s;
  EXPECT_EQ(by_kind["backup"].interval_ms, 0);
  EXPECT_EQ(by_kind["rollup"].interval_ms, 5'000);
  EXPECT_EQ(by_kind["lease_reaper"].interval_ms, 15'000);  // untouched
  EXPECT_EQ(by_kind["retention"].interval_ms, 86'400'000);

  // Empty items are ignored; the upper bound (a year) is allowed.
  auto loose = DefaultSchedules(",lease_reaper=5,,retention=31536000,");
  ASSERT_TRUE(loose.ok()) << loose.status().ToString();
  by_kind.clear();
  for (const auto& s : *loose) by_kind[s.kind] = s;
  EXPECT_EQ(by_kind["lease_reaper"].interval_ms, 5'000);
  EXPECT_EQ(by_kind["retention"].interval_ms, 31'536'000'000LL);
}

TEST(DefaultSchedulesTest, BadSpecsAreRejected) {
  for (const char* bad :
       {"bogus=5", "backup", "backup=", "backup=-1", "backup=abc", "backup=5s", "backup=1.5",
        "backup=31536001", "=5", "backup=5,rollup", "Backup=5", " backup=5"}) {
    auto r = DefaultSchedules(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().details().at("field").as_string(), "DEVSTREAM_SCHEDULE") << bad;
  }
}

}  // namespace
}  // namespace ds::engine
