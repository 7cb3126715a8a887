// Task leases (TaskService::Claim / Heartbeat / ReapExpiredLeases and the
// lease-owner rule of Transition) against a real migrated SQLite file:
// claim order and dependency gating, exactly-once claims from many threads
// and from two Database objects on one file (two "processes"), heartbeats,
// the owner-only rule with its force override, and the lease reaper.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/json.h"
#include "tasks/codec.h"
#include "tasks/task_service.h"
#include "test_util.h"

namespace ds::tasks {
namespace {

class TaskLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb(&path_);
    ASSERT_TRUE(db_);
    svc_ = std::make_unique<TaskService>(*db_);
    PlanInput pi;
    pi.title = "Lease plan";
    plan_ = svc_->CreatePlan(pi).value();
    PhaseInput ph;
    ph.name = "Phase 1";
    phase_ = svc_->CreatePhase(plan_.id, ph).value();
  }

  Task NewTask(const std::string& title, int priority = 5, std::vector<TaskDependency> deps = {},
               int max_retries = 3) {
    TaskInput in;
    in.title = title;
    in.priority = priority;
    in.depends_on = std::move(deps);
    in.max_retries = max_retries;
    auto t = svc_->CreateTask(phase_.id, in);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : Task{};
  }

  std::optional<Task> ClaimAs(const std::string& agent, int lease_seconds = 300) {
    ClaimInput in;
    in.agent = agent;
    in.lease_seconds = lease_seconds;
    auto r = svc_->Claim(in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  Result<Task> Move(const std::string& id, const std::string& to,
                    const std::optional<std::string>& actor, bool force = false,
                    const std::string& note = "") {
    TransitionInput in;
    in.to = to;
    in.actor = actor;
    in.force = force;
    in.note = note;
    return svc_->Transition(id, in);
  }

  // Puts the task's lease a minute into the past (as if its agent died).
  void ExpireLease(const std::string& id) {
    Status st = db_->Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(Stmt s,
                          c.Prepare("UPDATE micro_tasks SET lease_expires_at = ? WHERE id = ?"));
      s.Bind(1, FormatTimestamp(NowMillis() - 60'000)).Bind(2, id);
      DS_RETURN_IF_ERROR(s.Run());
      if (c.Changes() != 1) return Status::Internal("no such task " + id);
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  std::vector<TaskEvent> EventsOf(const std::string& id) {
    auto e = svc_->Events(id);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : std::vector<TaskEvent>{};
  }

  std::string path_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<TaskService> svc_;
  Plan plan_;
  Phase phase_;
};

TEST_F(TaskLeaseTest, ClaimTakesPriorityThenAgeAndRespectsBlockingDependencies) {
  Task low = NewTask("low", 3);
  Task first9 = NewTask("first nine", 9);
  Task second9 = NewTask("second nine", 9);
  Task gated = NewTask("gated ten", 10, {{low.id, "blocking"}});

  auto a = ClaimAs("agent-a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, first9.id);  // priority 10 is gated; of the two 9s the older
  EXPECT_EQ(a->status, "active");
  EXPECT_EQ(a->lease_owner, "agent-a");
  EXPECT_EQ(a->assigned_agent, "agent-a");
  ASSERT_TRUE(a->lease_expires_at);
  EXPECT_GT(*a->lease_expires_at, NowTimestamp());
  EXPECT_TRUE(a->started_at);

  auto b = ClaimAs("agent-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->id, second9.id);
  auto c = ClaimAs("agent-c");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, low.id);
  // Only the gated task is left and its prerequisite is still active.
  EXPECT_FALSE(ClaimAs("agent-d"));
  ASSERT_TRUE(Move(low.id, "completed", "agent-c").ok());
  auto d = ClaimAs("agent-d");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, gated.id);
  EXPECT_FALSE(ClaimAs("agent-e"));

  // The claim is in the audit trail, by the claiming agent.
  auto events = EventsOf(first9.id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().to_status, "active");
  EXPECT_EQ(events.back().from_status, "pending");
  EXPECT_EQ(events.back().actor, "agent-a");
}

TEST_F(TaskLeaseTest, ClaimIsScopedToPlanAndProject) {
  PlanInput other;
  other.title = "Other plan";
  other.project = "elsewhere";
  Plan p2 = svc_->CreatePlan(other).value();
  PhaseInput ph;
  ph.name = "P";
  Phase f2 = svc_->CreatePhase(p2.id, ph).value();
  TaskInput ti;
  ti.title = "elsewhere task";
  ti.priority = 10;
  Task far = svc_->CreateTask(f2.id, ti).value();
  Task here = NewTask("here", 1);

  ClaimInput in;
  in.agent = "a";
  auto r = svc_->Claim(in);  // the default project
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->id, here.id);
  in.plan_id = p2.id;
  r = svc_->Claim(in);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->id, far.id);
  in.plan_id = "pln_doesnotexist";
  EXPECT_EQ(svc_->Claim(in).status().code(), StatusCode::kNotFound);
}

TEST_F(TaskLeaseTest, ConcurrentClaimsFromThreadsAndTwoDatabasesGetEachTaskOnce) {
  constexpr int kTasks = 200;
  constexpr int kThreads = 8;
  for (int i = 0; i < kTasks; ++i) NewTask("t" + std::to_string(i), i % 10 + 1);

  // A second Database object on the same file: its own writer connection, so
  // the two only meet in SQLite's file locks, as two processes would.
  auto db2 = Database::Open(path_, {});
  ASSERT_TRUE(db2.ok()) << db2.status().ToString();
  TaskService svc2(**db2);

  std::mutex mu;
  std::map<std::string, std::string> owner;  // task id -> agent
  std::vector<std::string> duplicates;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TaskService& s = (t % 2 == 0) ? *svc_ : svc2;
      std::string agent = "agent-" + std::to_string(t);
      for (;;) {
        ClaimInput in;
        in.agent = agent;
        in.lease_seconds = 600;
        auto r = s.Claim(in);
        if (!r.ok()) {
          ++errors;
          ADD_FAILURE() << r.status().ToString();
          return;
        }
        if (!*r) return;
        std::lock_guard<std::mutex> lock(mu);
        if (!owner.emplace((*r)->id, agent).second) duplicates.push_back((*r)->id);
      }
    });
  }
  for (auto& th : threads) th.join();

  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(duplicates.empty()) << duplicates.size() << " tasks were handed out twice";
  EXPECT_EQ(owner.size(), static_cast<size_t>(kTasks));
  // The database agrees with what the claimers were told.
  TaskFilter f;
  f.limit = 500;
  auto all = svc_->ListTasks(f);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->items.size(), static_cast<size_t>(kTasks));
  std::set<std::string> agents_used;
  for (const auto& t : all->items) {
    EXPECT_EQ(t.status, "active") << t.id;
    ASSERT_TRUE(owner.count(t.id)) << t.id;
    EXPECT_EQ(t.lease_owner, owner[t.id]) << t.id;
    agents_used.insert(owner[t.id]);
  }
  EXPECT_GT(agents_used.size(), 1u);  // the claims really were spread out
  // Exactly one claim event per task.
  int64_t claim_events = -1;
  ASSERT_TRUE(db_->Read([&](Connection& c) -> Status {
                   DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM task_events WHERE "
                                                         "to_status = 'active'"));
                   DS_ASSIGN_OR_RETURN(bool row, s.Step());
                   (void)row;
                   claim_events = s.Int(0);
                   return Status::Ok();
                 })
                  .ok());
  EXPECT_EQ(claim_events, kTasks);
  EXPECT_FALSE(ClaimAs("late"));
}

TEST_F(TaskLeaseTest, HeartbeatByOwnerExtendsLease) {
  NewTask("a");
  auto claimed = ClaimAs("owner", 10);
  ASSERT_TRUE(claimed);
  std::string before = claimed->lease_expires_at.value();

  HeartbeatInput hb;
  hb.agent = "owner";
  hb.lease_seconds = 600;
  auto r = svc_->Heartbeat(claimed->id, hb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->lease_expires_at);
  EXPECT_GT(*r->lease_expires_at, before);
  auto expires = ParseTimestamp(*r->lease_expires_at);
  ASSERT_TRUE(expires);
  EXPECT_GT(*expires, NowMillis() + 500'000);  // about 600 s ahead
  EXPECT_EQ(r->lease_owner, "owner");
  EXPECT_EQ(r->status, "active");
  // Stored, not just returned.
  EXPECT_EQ(svc_->GetTask(claimed->id)->lease_expires_at, r->lease_expires_at);
}

TEST_F(TaskLeaseTest, HeartbeatByAnotherAgentIsForbiddenUnlessForced) {
  NewTask("a");
  auto claimed = ClaimAs("owner", 10);
  ASSERT_TRUE(claimed);
  std::string before = claimed->lease_expires_at.value();

  HeartbeatInput hb;
  hb.agent = "intruder";
  hb.lease_seconds = 600;
  auto r = svc_->Heartbeat(claimed->id, hb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kForbidden);
  EXPECT_EQ(r.status().details().at("lease_owner").as_string(), "owner");
  EXPECT_EQ(svc_->GetTask(claimed->id)->lease_expires_at, before);  // unchanged

  hb.force = true;
  r = svc_->Heartbeat(claimed->id, hb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->lease_expires_at.value(), before);
  EXPECT_EQ(r->lease_owner, "owner");  // forcing extends, it does not take over

  // Heartbeating a task that is not active is a conflict.
  Task idle = NewTask("idle");
  hb.agent = "owner";
  hb.force = false;
  EXPECT_EQ(svc_->Heartbeat(idle.id, hb).status().code(), StatusCode::kConflict);
  EXPECT_EQ(svc_->Heartbeat("tsk_missing", hb).status().code(), StatusCode::kNotFound);
}

TEST_F(TaskLeaseTest, OnlyTheLeaseOwnerCompletesOrFailsUnlessForced) {
  NewTask("a");
  auto claimed = ClaimAs("owner");
  ASSERT_TRUE(claimed);
  const std::string id = claimed->id;

  for (const char* to : {"completed", "failed", "blocked", "pending"}) {
    auto r = Move(id, to, std::string("someone-else"));
    ASSERT_FALSE(r.ok()) << to;
    EXPECT_EQ(r.status().code(), StatusCode::kForbidden) << to;
  }
  // No actor at all is not the owner either.
  EXPECT_EQ(Move(id, "completed", std::nullopt).status().code(), StatusCode::kForbidden);
  Task still = svc_->GetTask(id).value();
  EXPECT_EQ(still.status, "active");
  EXPECT_EQ(still.lease_owner, "owner");
  EXPECT_EQ(still.version, claimed->version);

  // An admin with force may, and the audit trail says so.
  auto forced = Move(id, "failed", std::string("admin"), true, "stuck for an hour");
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();
  EXPECT_EQ(forced->status, "failed");
  EXPECT_FALSE(forced->lease_owner);
  EXPECT_FALSE(forced->lease_expires_at);
  auto events = EventsOf(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().actor, "admin");
  EXPECT_EQ(events.back().to_status, "failed");
  EXPECT_NE(events.back().note.find("forced over the lease of owner"), std::string::npos)
      << events.back().note;
  EXPECT_NE(events.back().note.find("stuck for an hour"), std::string::npos);
}

TEST_F(TaskLeaseTest, OwnerCompletesAndLeaseIsReleased) {
  NewTask("a");
  auto claimed = ClaimAs("owner");
  ASSERT_TRUE(claimed);
  auto done = Move(claimed->id, "completed", std::string("owner"), false, "done");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->status, "completed");
  EXPECT_FALSE(done->lease_owner);
  EXPECT_FALSE(done->lease_expires_at);
  EXPECT_EQ(EventsOf(claimed->id).back().actor, "owner");
  // Nothing to reap afterwards.
  auto reaped = svc_->ReapExpiredLeases();
  ASSERT_TRUE(reaped.ok());
  EXPECT_TRUE(reaped->requeued.empty());
  EXPECT_TRUE(reaped->failed.empty());
}

TEST_F(TaskLeaseTest, ReaperRequeuesExpiredLeasesThenFailsWhenOutOfRetries) {
  Task t = NewTask("flaky", 5, {}, /*max_retries=*/2);
  Task other = NewTask("healthy", 1);

  // A live lease is left alone.
  auto live = ClaimAs("agent-a");
  ASSERT_TRUE(live);
  ASSERT_EQ(live->id, t.id);
  auto healthy = ClaimAs("agent-h");
  ASSERT_TRUE(healthy);
  ASSERT_EQ(healthy->id, other.id);
  auto none = svc_->ReapExpiredLeases();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->requeued.empty());
  EXPECT_TRUE(none->failed.empty());

  for (int attempt = 1; attempt <= 2; ++attempt) {
    ExpireLease(t.id);
    auto reaped = svc_->ReapExpiredLeases();
    ASSERT_TRUE(reaped.ok()) << reaped.status().ToString();
    EXPECT_EQ(reaped->requeued, std::vector<std::string>{t.id});
    EXPECT_TRUE(reaped->failed.empty());
    Task back = svc_->GetTask(t.id).value();
    EXPECT_EQ(back.status, "pending");
    EXPECT_EQ(back.retry_count, attempt);
    EXPECT_FALSE(back.lease_owner);
    EXPECT_FALSE(back.lease_expires_at);
    auto events = EventsOf(t.id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().actor, "lease-reaper");
    EXPECT_EQ(events.back().from_status, "active");
    EXPECT_EQ(events.back().to_status, "pending");
    EXPECT_NE(events.back().note.find("expired"), std::string::npos) << events.back().note;
    // The other task's live lease is untouched.
    EXPECT_EQ(svc_->GetTask(other.id)->status, "active");

    std::string agent = "agent-" + std::to_string(attempt);
    auto again = ClaimAs(agent);
    ASSERT_TRUE(again);
    ASSERT_EQ(again->id, t.id);
    EXPECT_EQ(again->lease_owner, agent);
    EXPECT_EQ(again->retry_count, attempt);
  }

  // retry_count == max_retries: the next expiry fails the task.
  ExpireLease(t.id);
  auto reaped = svc_->ReapExpiredLeases();
  ASSERT_TRUE(reaped.ok());
  EXPECT_TRUE(reaped->requeued.empty());
  EXPECT_EQ(reaped->failed, std::vector<std::string>{t.id});
  Task failed = svc_->GetTask(t.id).value();
  EXPECT_EQ(failed.status, "failed");
  EXPECT_EQ(failed.retry_count, 2);
  EXPECT_FALSE(failed.lease_owner);
  EXPECT_NE(failed.error_log.find("lease"), std::string::npos) << failed.error_log;
  EXPECT_NE(failed.error_log.find("agent-2"), std::string::npos) << failed.error_log;
  auto events = EventsOf(t.id);
  EXPECT_EQ(events.back().actor, "lease-reaper");
  EXPECT_EQ(events.back().to_status, "failed");
  // Reaping again finds nothing.
  auto idle = svc_->ReapExpiredLeases();
  ASSERT_TRUE(idle.ok());
  EXPECT_TRUE(idle->requeued.empty());
  EXPECT_TRUE(idle->failed.empty());
}

TEST_F(TaskLeaseTest, ReaperWithZeroRetriesFailsAtOnce) {
  Task t = NewTask("one shot", 5, {}, /*max_retries=*/0);
  ASSERT_TRUE(ClaimAs("agent-a"));
  ExpireLease(t.id);
  auto reaped = svc_->ReapExpiredLeases();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(reaped->failed, std::vector<std::string>{t.id});
  Task failed = svc_->GetTask(t.id).value();
  EXPECT_EQ(failed.status, "failed");
  EXPECT_EQ(failed.retry_count, 0);
  EXPECT_NE(failed.error_log.find("lease of agent-a expired"), std::string::npos)
      << failed.error_log;
}

TEST_F(TaskLeaseTest, ClaimReapsExpiredLeasesFirst) {
  Task t = NewTask("only");
  int64_t claimed_at = NowMillis();
  auto first = ClaimAs("agent-a", /*lease_seconds=*/1);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->id, t.id);
  // While the lease is live nobody else gets it.
  auto early = ClaimAs("agent-b");
  if (NowMillis() < claimed_at + 900) {  // (unless this machine stalled that long)
    EXPECT_FALSE(early);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  // No reaper ran: the claim itself returns the expired lease to pending.
  auto second = ClaimAs("agent-b");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, t.id);
  EXPECT_EQ(second->lease_owner, "agent-b");
  EXPECT_EQ(second->retry_count, 1);
  auto events = EventsOf(t.id);
  ASSERT_GE(events.size(), 3u);
  const TaskEvent& reap = events[events.size() - 2];
  EXPECT_EQ(reap.actor, "lease-reaper");
  EXPECT_EQ(reap.to_status, "pending");
  EXPECT_EQ(events.back().actor, "agent-b");
  EXPECT_EQ(events.back().to_status, "active");
  // The first agent has lost the task.
  EXPECT_EQ(Move(t.id, "completed", std::string("agent-a")).status().code(),
            StatusCode::kForbidden);
}

TEST(TaskLeaseCodecTest, DecodeClaimTakesAgentFromBodyElseHeader) {
  auto body = ParseJson(R"({"lease_seconds": 30, "plan_id": "pln_x"})").value();
  auto in = DecodeClaim(body, std::string("hdr"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->agent, "hdr");
  EXPECT_EQ(in->lease_seconds, 30);
  EXPECT_EQ(in->plan_id, "pln_x");

  auto with_agent = DecodeClaim(ParseJson(R"({"agent": "body"})").value(), std::string("hdr"));
  ASSERT_TRUE(with_agent.ok());
  EXPECT_EQ(with_agent->agent, "body");
  EXPECT_EQ(with_agent->lease_seconds, 300);

  auto no_agent = DecodeClaim(ParseJson("{}").value(), std::nullopt);
  EXPECT_EQ(no_agent.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(no_agent.status().details().at("field").as_string(), "agent");
  for (const char* bad :
       {R"({"agent":"a","lease_seconds":0})", R"({"agent":"a","lease_seconds":86401})",
        R"({"agent":"a","lease_seconds":"10"})", R"({"agent":"a","bogus":1})", R"([1])"}) {
    EXPECT_EQ(DecodeClaim(ParseJson(bad).value(), std::nullopt).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(TaskLeaseCodecTest, DecodeHeartbeatReadsForce) {
  auto in = DecodeHeartbeat(ParseJson(R"({"force": true, "lease_seconds": 5})").value(),
                            std::string("hdr"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->agent, "hdr");
  EXPECT_TRUE(in->force);
  EXPECT_EQ(in->lease_seconds, 5);
  auto plain = DecodeHeartbeat(ParseJson(R"({"agent": "x"})").value(), std::nullopt);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->force);
  EXPECT_EQ(DecodeHeartbeat(ParseJson("{}").value(), std::nullopt).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeHeartbeat(ParseJson(R"({"agent":"a","force":"yes"})").value(), std::nullopt)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ds::tasks
