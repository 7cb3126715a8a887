// JobQueue against a real migrated SQLite file: enqueue/claim/complete,
// dedup keys, priority order, retries with backoff, the dead letter,
// permanent failures, Retry, expired leases, the lease-owner rule, Release,
// List pagination, Stats and PruneFinished.
#include "engine/job_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "core/clock.h"
#include "test_util.h"

namespace ds::engine {
namespace {

class JobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb();
    ASSERT_TRUE(db_);
  }

  Job Enqueue(JobQueue& q, const std::string& kind, EnqueueOptions o = {},
              json::object payload = {}) {
    auto r = q.Enqueue(kind, payload, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->job : Job{};
  }

  std::optional<Job> Claim(JobQueue& q, const std::string& worker, int64_t lease_ms = 60'000,
                           const std::vector<std::string>& kinds = {}) {
    auto r = q.Claim(worker, lease_ms, kinds);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  std::unique_ptr<Database> db_;
};

TEST_F(JobQueueTest, EnqueueClaimComplete) {
  JobQueue q(*db_);
  Job j = Enqueue(q, "backup", {}, json::object{{"path", "/tmp/x.db"}});
  EXPECT_EQ(j.state, "queued");
  EXPECT_EQ(j.attempts, 0);
  EXPECT_EQ(j.max_attempts, 5);
  EXPECT_FALSE(j.lease_owner);
  EXPECT_EQ(ParseJson(j.payload).value().as_object().at("path").as_string(), "/tmp/x.db");

  auto c = Claim(q, "w1", 30'000);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, j.id);
  EXPECT_EQ(c->state, "running");
  EXPECT_EQ(c->attempts, 1);
  EXPECT_EQ(c->lease_owner, "w1");
  ASSERT_TRUE(c->lease_expires_at);
  EXPECT_GT(*c->lease_expires_at, NowTimestamp());
  EXPECT_FALSE(Claim(q, "w2"));  // nothing else is due

  ASSERT_TRUE(q.Complete(j.id, "w1").ok());
  Job done = q.Get(j.id).value();
  EXPECT_EQ(done.state, "done");
  EXPECT_FALSE(done.lease_owner);
  EXPECT_FALSE(done.lease_expires_at);
  EXPECT_TRUE(done.finished_at);
  // Completing twice is a conflict (it is no longer running).
  EXPECT_EQ(q.Complete(j.id, "w1").code(), StatusCode::kConflict);
  EXPECT_EQ(q.Get("job_missing").status().code(), StatusCode::kNotFound);
}

TEST_F(JobQueueTest, EnqueueValidatesKindAndAttempts) {
  JobQueue q(*db_);
  for (const char* bad : {"", "Backup", "back-up", "b1"}) {
    EXPECT_EQ(q.Enqueue(bad, {}).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EnqueueOptions o;
  o.max_attempts = 0;
  EXPECT_EQ(q.Enqueue("backup", {}, o).status().code(), StatusCode::kInvalidArgument);
  o.max_attempts = 101;
  EXPECT_EQ(q.Enqueue("backup", {}, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q.Stats()->queued, 0);
}

TEST_F(JobQueueTest, ClaimFiltersByKind) {
  JobQueue q(*db_);
  Job a = Enqueue(q, "alpha");
  Job b = Enqueue(q, "beta");
  EXPECT_FALSE(Claim(q, "w", 60'000, {"gamma"}));
  auto c = Claim(q, "w", 60'000, {"beta", "gamma"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, b.id);
  c = Claim(q, "w");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, a.id);
}

TEST_F(JobQueueTest, DedupKeyJoinsQueuedOrRunningJob) {
  JobQueue q(*db_);
  EnqueueOptions o;
  o.dedup_key = "embed";
  auto first = q.Enqueue("embed_memory", {}, o);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->deduplicated);
  auto second = q.Enqueue("embed_memory", {}, o);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(second->job.id, first->job.id);
  // Still joins while running.
  ASSERT_TRUE(Claim(q, "w"));
  auto third = q.Enqueue("embed_memory", {}, o);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->deduplicated);
  EXPECT_EQ(third->job.id, first->job.id);
  EXPECT_EQ(q.Stats()->queued + q.Stats()->running, 1);
  // Once finished, the key is free again.
  ASSERT_TRUE(q.Complete(first->job.id, "w").ok());
  auto fourth = q.Enqueue("embed_memory", {}, o);
  ASSERT_TRUE(fourth.ok());
  EXPECT_FALSE(fourth->deduplicated);
  EXPECT_NE(fourth->job.id, first->job.id);
  // Jobs without a key never dedup.
  EXPECT_FALSE(q.Enqueue("embed_memory", {})->deduplicated);
  EXPECT_FALSE(q.Enqueue("embed_memory", {})->deduplicated);
  EXPECT_EQ(q.Stats()->queued, 3);
}

TEST_F(JobQueueTest, HigherPriorityRunsFirstThenOlder) {
  JobQueue q(*db_);
  EnqueueOptions lo, mid, hi;
  lo.priority = 1;
  mid.priority = 5;
  hi.priority = 9;
  Job a = Enqueue(q, "k", lo);
  Job b = Enqueue(q, "k", mid);
  Job c = Enqueue(q, "k", hi);
  Job d = Enqueue(q, "k", mid);
  std::vector<std::string> order;
  while (auto j = Claim(q, "w")) order.push_back(j->id);
  EXPECT_EQ(order, (std::vector<std::string>{c.id, b.id, d.id, a.id}));
}

TEST_F(JobQueueTest, DelayedJobIsNotDueYet) {
  JobQueue q(*db_);
  EnqueueOptions o;
  o.delay_ms = 60'000;
  Job j = Enqueue(q, "k", o);
  EXPECT_GT(j.run_at, NowTimestamp());
  EXPECT_FALSE(Claim(q, "w"));
  EXPECT_EQ(q.Stats()->queued, 1);
  EXPECT_EQ(q.Stats()->oldest_queued_age_s, 0);  // not due, so not waiting
}

TEST_F(JobQueueTest, FailRetriesWithBackoffThenDeadLetters) {
  JobQueue q(*db_, Backoff{60'000, 60'000});
  EnqueueOptions o;
  o.max_attempts = 2;
  Job j = Enqueue(q, "k", o);
  ASSERT_TRUE(Claim(q, "w"));
  int64_t before = NowMillis();
  auto f1 = q.Fail(j.id, "w", "boom 1");
  ASSERT_TRUE(f1.ok()) << f1.status().ToString();
  EXPECT_EQ(f1->state, "queued");
  EXPECT_EQ(f1->attempts, 1);
  EXPECT_EQ(f1->last_error, "boom 1");
  EXPECT_FALSE(f1->lease_owner);
  EXPECT_FALSE(f1->finished_at);
  // Jitter scales the 60 s delay by [0.5, 1].
  auto run_at = ParseTimestamp(f1->run_at);
  ASSERT_TRUE(run_at);
  EXPECT_GE(*run_at, before + 29'000);
  EXPECT_LE(*run_at, NowMillis() + 61'000);
  EXPECT_FALSE(Claim(q, "w"));  // backing off

  // Make it due now and use up the last attempt.
  ASSERT_TRUE(db_->Write([&](Connection& c) -> Status {
                   DS_ASSIGN_OR_RETURN(Stmt s,
                                       c.Prepare("UPDATE jobs SET run_at = ? WHERE id = ?"));
                   s.Bind(1, FormatTimestamp(NowMillis() - 1)).Bind(2, j.id);
                   return s.Run();
                 })
                  .ok());
  auto again = Claim(q, "w");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempts, 2);
  auto f2 = q.Fail(j.id, "w", "boom 2");
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(f2->state, "dead");
  EXPECT_EQ(f2->attempts, 2);
  EXPECT_EQ(f2->last_error, "boom 2");
  EXPECT_TRUE(f2->finished_at);
  EXPECT_FALSE(Claim(q, "w"));
  auto stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead, 1);
  EXPECT_EQ(stats->queued, 0);
}

TEST_F(JobQueueTest, BackoffDelayGrowsAndIsCapped) {
  Backoff b{1000, 5000};
  for (int i = 0; i < 20; ++i) {
    int64_t d1 = b.DelayMs(1), d2 = b.DelayMs(2), d3 = b.DelayMs(3), d9 = b.DelayMs(9);
    EXPECT_GE(d1, 500);
    EXPECT_LE(d1, 1000);
    EXPECT_GE(d2, 1000);
    EXPECT_LE(d2, 2000);
    EXPECT_GE(d3, 2000);
    EXPECT_LE(d3, 4000);
    EXPECT_GE(d9, 2500);
    EXPECT_LE(d9, 5000);
  }
  EXPECT_EQ((Backoff{0, 0}.DelayMs(3)), 0);
  EXPECT_LE((Backoff{1000, 300'000}.DelayMs(100)), 300'000);  // huge attempt counts do not overflow
  EXPECT_GE((Backoff{1000, 300'000}.DelayMs(100)), 150'000);
}

TEST_F(JobQueueTest, PermanentFailureGoesToFailedAtOnce) {
  JobQueue q(*db_, Backoff{0, 0});
  Job j = Enqueue(q, "k");
  ASSERT_TRUE(Claim(q, "w"));
  auto f = q.Fail(j.id, "w", "bad payload", /*permanent=*/true);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->state, "failed");
  EXPECT_EQ(f->attempts, 1);
  EXPECT_EQ(f->last_error, "bad payload");
  EXPECT_TRUE(f->finished_at);
  EXPECT_FALSE(Claim(q, "w"));
  EXPECT_EQ(q.Stats()->failed, 1);
}

TEST_F(JobQueueTest, RetryRequeuesDeadOrFailedJobsOnly) {
  JobQueue q(*db_, Backoff{0, 0});
  EnqueueOptions o;
  o.max_attempts = 1;
  Job j = Enqueue(q, "k", o);
  ASSERT_TRUE(Claim(q, "w"));
  ASSERT_EQ(q.Fail(j.id, "w", "boom")->state, "dead");

  auto r = q.Retry(j.id);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "queued");
  EXPECT_EQ(r->attempts, 0);
  EXPECT_FALSE(r->finished_at);
  EXPECT_LE(r->run_at, NowTimestamp());
  EXPECT_EQ(r->last_error, "boom");  // the history stays visible
  // A queued job cannot be retried.
  auto again = q.Retry(j.id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kConflict);
  EXPECT_EQ(again.status().details().at("state").as_string(), "queued");
  // Nor a running or done one.
  ASSERT_TRUE(Claim(q, "w"));
  EXPECT_EQ(q.Retry(j.id).status().code(), StatusCode::kConflict);
  ASSERT_TRUE(q.Complete(j.id, "w").ok());
  EXPECT_EQ(q.Retry(j.id).status().code(), StatusCode::kConflict);
  EXPECT_EQ(q.Retry("job_missing").status().code(), StatusCode::kNotFound);

  // A failed (permanent) job can be retried too.
  Job p = Enqueue(q, "k");
  ASSERT_TRUE(Claim(q, "w"));
  ASSERT_EQ(q.Fail(p.id, "w", "bad", true)->state, "failed");
  EXPECT_EQ(q.Retry(p.id)->state, "queued");
}

TEST_F(JobQueueTest, RetryRefusesWhenSameDedupKeyIsQueued) {
  JobQueue q(*db_, Backoff{0, 0});
  EnqueueOptions o;
  o.dedup_key = "only-one";
  o.max_attempts = 1;
  Job j = Enqueue(q, "k", o);
  ASSERT_TRUE(Claim(q, "w"));
  ASSERT_EQ(q.Fail(j.id, "w", "boom")->state, "dead");
  Job fresh = Enqueue(q, "k", o);
  ASSERT_NE(fresh.id, j.id);
  auto r = q.Retry(j.id);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_EQ(r.status().details().at("job_id").as_string(), fresh.id);
}

TEST_F(JobQueueTest, RequeueExpiredReturnsLostJobsOrDeadLettersTheLastAttempt) {
  JobQueue q(*db_);
  EnqueueOptions two;
  two.max_attempts = 2;
  Job j = Enqueue(q, "k", two);
  Job live = Enqueue(q, "other");

  // (Claim also requeues expired leases: the healthy claim comes first.)
  ASSERT_TRUE(Claim(q, "healthy-worker", 600'000, {"other"}));
  auto c1 = Claim(q, "dying-worker", /*lease_ms=*/1, {"k"});
  ASSERT_TRUE(c1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto ids = q.RequeueExpired();
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, std::vector<std::string>{j.id});
  Job back = q.Get(j.id).value();
  EXPECT_EQ(back.state, "queued");
  EXPECT_EQ(back.attempts, 1);  // the lost attempt counts
  EXPECT_FALSE(back.lease_owner);
  EXPECT_FALSE(back.lease_expires_at);
  EXPECT_TRUE(back.last_error);
  EXPECT_LE(back.run_at, NowTimestamp());  // due now
  EXPECT_EQ(q.Get(live.id)->state, "running");
  // The lost worker can no longer complete it.
  EXPECT_EQ(q.Complete(j.id, "dying-worker").code(), StatusCode::kConflict);

  // Second (last) attempt lost as well: dead letter.
  auto c2 = Claim(q, "dying-worker", 1, {"k"});
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->attempts, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ids = q.RequeueExpired();
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<std::string>{j.id});
  Job dead = q.Get(j.id).value();
  EXPECT_EQ(dead.state, "dead");
  EXPECT_TRUE(dead.finished_at);
  ASSERT_TRUE(dead.last_error);
  EXPECT_NE(dead.last_error->find("lease"), std::string::npos);
  // Nothing more to do.
  EXPECT_TRUE(q.RequeueExpired()->empty());
}

TEST_F(JobQueueTest, ClaimRequeuesExpiredLeasesEvenOfTheReaperItself) {
  // A worker killed while running lease_reaper left that job 'running', and
  // its dedup key kept the scheduler from queuing another: no job was ever
  // requeued again. Claim now requeues expired leases itself.
  JobQueue q(*db_);
  EnqueueOptions reaper;
  reaper.dedup_key = "schedule:lease_reaper";
  Job r = Enqueue(q, "lease_reaper", reaper);
  Job lost = Enqueue(q, "k");
  ASSERT_TRUE(Claim(q, "killed-worker", /*lease_ms=*/1, {"lease_reaper"}));
  ASSERT_TRUE(Claim(q, "killed-worker", /*lease_ms=*/1, {"k"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // The schedule cannot queue another reaper while its job is 'running'.
  auto again = q.Enqueue("lease_reaper", {}, reaper);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->job.id, r.id);
  // Any worker's next claim takes the lost jobs back, in order of urgency.
  std::set<std::string> claimed;
  for (int i = 0; i < 2; ++i) {
    auto c = Claim(q, "new-worker", 600'000, {});
    ASSERT_TRUE(c) << "claim " << i;
    EXPECT_EQ(c->attempts, 2);
    claimed.insert(c->id);
  }
  EXPECT_EQ(claimed, (std::set<std::string>{r.id, lost.id}));
}

TEST_F(JobQueueTest, OnlyTheLeaseOwnerCompletesFailsExtendsOrReleases) {
  JobQueue q(*db_, Backoff{0, 0});
  Job j = Enqueue(q, "k");
  ASSERT_TRUE(Claim(q, "owner"));
  EXPECT_EQ(q.Complete(j.id, "thief").code(), StatusCode::kConflict);
  EXPECT_EQ(q.Fail(j.id, "thief", "x").status().code(), StatusCode::kConflict);
  EXPECT_EQ(q.Release(j.id, "thief").code(), StatusCode::kConflict);
  EXPECT_EQ(q.Extend(j.id, "thief", 60'000).code(), StatusCode::kConflict);
  Job still = q.Get(j.id).value();
  EXPECT_EQ(still.state, "running");
  EXPECT_EQ(still.lease_owner, "owner");
  EXPECT_EQ(still.attempts, 1);

  std::string before = still.lease_expires_at.value();
  ASSERT_TRUE(q.Extend(j.id, "owner", 3'600'000).ok());
  EXPECT_GT(q.Get(j.id)->lease_expires_at.value(), before);
  EXPECT_TRUE(q.Complete(j.id, "owner").ok());
  EXPECT_EQ(q.Complete("job_missing", "owner").code(), StatusCode::kNotFound);
}

TEST_F(JobQueueTest, ReleaseRequeuesWithoutCountingTheAttempt) {
  JobQueue q(*db_);
  EnqueueOptions o;
  o.max_attempts = 1;
  Job j = Enqueue(q, "k", o);
  auto c = Claim(q, "w");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->attempts, 1);
  ASSERT_TRUE(q.Release(j.id, "w").ok());
  Job back = q.Get(j.id).value();
  EXPECT_EQ(back.state, "queued");
  EXPECT_EQ(back.attempts, 0);
  EXPECT_FALSE(back.lease_owner);
  EXPECT_FALSE(back.lease_expires_at);
  EXPECT_LE(back.run_at, NowTimestamp());
  // Still runnable: its only attempt was not used up.
  auto again = Claim(q, "w2");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempts, 1);
  EXPECT_EQ(q.Release(j.id, "w").code(), StatusCode::kConflict);
}

TEST_F(JobQueueTest, ListPaginatesWithCursorNewestFirst) {
  JobQueue q(*db_);
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(Enqueue(q, i % 2 ? "odd" : "even").id);
  std::vector<std::string> seen;
  JobFilter f;
  f.limit = 3;
  int pages = 0;
  for (;;) {
    auto page = q.List(f);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ++pages;
    EXPECT_LE(page->items.size(), 3u);
    for (const auto& j : page->items) seen.push_back(j.id);
    if (!page->next_cursor) break;
    f.cursor = page->next_cursor;
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);

  // Filters.
  JobFilter odd;
  odd.kind = "odd";
  auto p = q.List(odd);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->items.size(), 3u);
  for (const auto& j : p->items) EXPECT_EQ(j.kind, "odd");
  EXPECT_FALSE(p->next_cursor);
  ASSERT_TRUE(Claim(q, "w"));
  JobFilter running;
  running.state = "running";
  EXPECT_EQ(q.List(running)->items.size(), 1u);

  JobFilter bad;
  bad.cursor = "not-a-cursor";
  EXPECT_EQ(q.List(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(JobQueueTest, StatsCountStatesAndPruneDeletesOldDoneJobs) {
  JobQueue q(*db_, Backoff{0, 0});
  Job a = Enqueue(q, "k");
  Job b = Enqueue(q, "k");
  Enqueue(q, "k");
  ASSERT_TRUE(Claim(q, "w"));
  ASSERT_TRUE(q.Complete(a.id, "w").ok());
  ASSERT_TRUE(Claim(q, "w"));
  ASSERT_EQ(q.Fail(b.id, "w", "x", true)->state, "failed");
  ASSERT_TRUE(Claim(q, "w"));
  auto s = q.Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->queued, 0);
  EXPECT_EQ(s->running, 1);
  EXPECT_EQ(s->done, 1);
  EXPECT_EQ(s->failed, 1);
  EXPECT_EQ(s->dead, 0);

  // A recent done job is kept by a long window, removed by a zero one.
  EXPECT_EQ(q.PruneFinished(3'600'000).value(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(q.PruneFinished(0).value(), 1);
  EXPECT_EQ(q.Get(a.id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(q.Get(b.id).ok());  // failed jobs are kept
}

TEST_F(JobQueueTest, OldestQueuedAgeReflectsWaitingJobs) {
  JobQueue q(*db_);
  EXPECT_EQ(q.Stats()->oldest_queued_age_s, 0);
  Job j = Enqueue(q, "k");
  ASSERT_TRUE(db_->Write([&](Connection& c) -> Status {
                   DS_ASSIGN_OR_RETURN(Stmt s,
                                       c.Prepare("UPDATE jobs SET run_at = ? WHERE id = ?"));
                   s.Bind(1, FormatTimestamp(NowMillis() - 120'000)).Bind(2, j.id);
                   return s.Run();
                 })
                  .ok());
  double age = q.Stats()->oldest_queued_age_s;
  EXPECT_GE(age, 119.0);
  EXPECT_LE(age, 130.0);
}

TEST_F(JobQueueTest, ConcurrentClaimsNeverShareAJob) {
  JobQueue q(*db_);
  constexpr int kJobs = 60;
  for (int i = 0; i < kJobs; ++i) Enqueue(q, "k");
  std::mutex mu;
  std::multiset<std::string> got;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string w = "w" + std::to_string(t);
      for (;;) {
        auto r = q.Claim(w, 60'000, {});
        if (!r.ok()) {
          ADD_FAILURE() << r.status().ToString();
          return;
        }
        if (!*r) return;
        EXPECT_TRUE(q.Complete((*r)->id, w).ok());
        std::lock_guard<std::mutex> lock(mu);
        got.insert((*r)->id);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(got.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(q.Stats()->done, kJobs);
}

}  // namespace
}  // namespace ds::engine
