#include "tasks/task_service.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace ds::tasks {
namespace {

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = ds::testing::NewMigratedDb();
    ASSERT_TRUE(db_);
    svc_ = std::make_unique<TaskService>(*db_);
    PlanInput pi;
    pi.title = "Plan";
    plan_ = svc_->CreatePlan(pi).value();
    PhaseInput ph;
    ph.name = "Phase 1";
    phase_ = svc_->CreatePhase(plan_.id, ph).value();
  }

  Task NewTask(const std::string& title, int priority = 5, std::vector<TaskDependency> deps = {},
               const std::string& phase = "") {
    TaskInput in;
    in.title = title;
    in.priority = priority;
    in.depends_on = std::move(deps);
    auto t = svc_->CreateTask(phase.empty() ? phase_.id : phase, in);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : Task{};
  }

  Result<Task> Move(const std::string& id, const std::string& to) {
    TransitionInput in;
    in.to = to;
    return svc_->Transition(id, in);
  }

  std::unique_ptr<Database> db_;
  std::unique_ptr<TaskService> svc_;
  Plan plan_;
  Phase phase_;
};

std::vector<std::string> Ids(const std::vector<Task>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.push_back(t.id);
  return out;
}

TEST_F(TaskServiceTest, PlanGoesToDefaultProject) {
  auto projects = svc_->ListProjects();
  ASSERT_TRUE(projects.ok());
  ASSERT_EQ(projects->size(), 1u);
  EXPECT_EQ((*projects)[0].name, "default");
  EXPECT_EQ(plan_.project_id, (*projects)[0].id);
  PlanFilter f;
  f.project = "other";
  EXPECT_EQ(svc_->ListPlans(f).status().code(), StatusCode::kNotFound);
}

TEST_F(TaskServiceTest, StartRequiresBlockingDependencies) {
  Task a = NewTask("a");
  Task b = NewTask("b", 5, {{a.id, "blocking"}});
  auto r = Move(b.id, "active");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_TRUE(r.status().details().contains("unmet"));
  ASSERT_TRUE(Move(a.id, "active").ok());
  ASSERT_TRUE(Move(a.id, "completed").ok());
  EXPECT_TRUE(Move(b.id, "active").ok());
}

TEST_F(TaskServiceTest, SoftDependencyDoesNotBlockButOrdersReadyList) {
  Task a = NewTask("a", 1);
  Task b = NewTask("b", 9, {{a.id, "soft"}});
  Task c = NewTask("c", 5);
  auto ready = svc_->Ready({});
  ASSERT_TRUE(ready.ok());
  // b has the highest priority but softly waits for a; c has priority 5 > a's 1
  // so c comes first, then a, then b.
  EXPECT_EQ(Ids(*ready), (std::vector<std::string>{c.id, a.id, b.id}));
  EXPECT_TRUE(Move(b.id, "active").ok());
}

TEST_F(TaskServiceTest, IllegalTransitionListsAllowed) {
  Task a = NewTask("a");
  auto r = Move(a.id, "completed");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  const auto& allowed = r.status().details().at("allowed").as_array();
  EXPECT_EQ(allowed.size(), 2u);
}

TEST_F(TaskServiceTest, CycleIsRejectedAndNamed) {
  Task a = NewTask("a");
  Task b = NewTask("b", 5, {{a.id, "blocking"}});
  Task c = NewTask("c", 5, {{b.id, "soft"}});
  auto r = svc_->AddDependency(a.id, {c.id, "blocking"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos);
  // Nothing was stored.
  EXPECT_TRUE(svc_->GetTask(a.id)->depends_on.empty());
  EXPECT_EQ(svc_->AddDependency(a.id, {a.id, "blocking"}).status().code(), StatusCode::kConflict);
}

TEST_F(TaskServiceTest, PhaseDependencyGatesTasksAndCyclesAcrossPhasesAreRejected) {
  Task a = NewTask("a");
  PhaseInput p2;
  p2.name = "Phase 2";
  p2.depends_on = {phase_.id};
  Phase phase2 = svc_->CreatePhase(plan_.id, p2).value();
  Task b = NewTask("b", 10, {}, phase2.id);
  auto ready = svc_->Ready({});
  EXPECT_EQ(Ids(*ready), (std::vector<std::string>{a.id}));
  EXPECT_EQ(Move(b.id, "active").status().code(), StatusCode::kConflict);
  // a depending on b would deadlock: b waits for phase 1, which contains a.
  EXPECT_EQ(svc_->AddDependency(a.id, {b.id, "blocking"}).status().code(), StatusCode::kConflict);
  ASSERT_TRUE(Move(a.id, "active").ok());
  ASSERT_TRUE(Move(a.id, "completed").ok());
  EXPECT_EQ(svc_->GetPhase(phase_.id)->status, "completed");
  EXPECT_EQ(Ids(*svc_->Ready({})), (std::vector<std::string>{b.id}));
}

TEST_F(TaskServiceTest, RollUpsFollowTasks) {
  Task a = NewTask("a");
  Task b = NewTask("b");
  ASSERT_TRUE(Move(a.id, "active").ok());
  EXPECT_EQ(svc_->GetPhase(phase_.id)->status, "active");
  ASSERT_TRUE(Move(a.id, "failed").ok());
  auto ph = svc_->GetPhase(phase_.id);
  EXPECT_EQ(ph->status, "blocked");
  ASSERT_TRUE(ph->blocking_reason.has_value());
  ASSERT_TRUE(Move(a.id, "pending").ok());
  EXPECT_EQ(svc_->GetTask(a.id)->retry_count, 1);
  ASSERT_TRUE(Move(a.id, "active").ok());
  ASSERT_TRUE(Move(a.id, "completed").ok());
  EXPECT_EQ(svc_->GetPlan(plan_.id)->status, "draft");
  ASSERT_TRUE(Move(b.id, "skipped").ok());
  EXPECT_EQ(svc_->GetPhase(phase_.id)->status, "completed");
  EXPECT_EQ(svc_->GetPlan(plan_.id)->status, "completed");
  auto progress = svc_->PlanProgress(plan_.id);
  EXPECT_EQ(progress->percent, 100.0);
  // A new task reopens the plan.
  NewTask("c");
  EXPECT_EQ(svc_->GetPlan(plan_.id)->status, "active");
}

TEST_F(TaskServiceTest, RetryIsBounded) {
  TaskInput in;
  in.title = "flaky";
  in.max_retries = 1;
  Task t = svc_->CreateTask(phase_.id, in).value();
  ASSERT_TRUE(Move(t.id, "active").ok());
  ASSERT_TRUE(Move(t.id, "failed").ok());
  ASSERT_TRUE(Move(t.id, "pending").ok());
  ASSERT_TRUE(Move(t.id, "active").ok());
  ASSERT_TRUE(Move(t.id, "failed").ok());
  EXPECT_EQ(Move(t.id, "pending").status().code(), StatusCode::kConflict);
}

TEST_F(TaskServiceTest, StaleVersionIsRefused) {
  Task a = NewTask("a");
  TaskPatch p;
  p.title = "renamed";
  p.expected_version = a.version;
  auto updated = svc_->UpdateTask(a.id, p);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->version, a.version + 1);
  p.title = "again";
  auto stale = svc_->UpdateTask(a.id, p);
  EXPECT_EQ(stale.status().code(), StatusCode::kPreconditionFailed);
  EXPECT_EQ(svc_->GetTask(a.id)->title, "renamed");
  TransitionInput tr;
  tr.to = "active";
  tr.expected_version = a.version;
  EXPECT_EQ(svc_->Transition(a.id, tr).status().code(), StatusCode::kPreconditionFailed);
}

TEST_F(TaskServiceTest, AuditTrailRecordsEveryChange) {
  Task a = NewTask("a");
  TransitionInput tr;
  tr.to = "active";
  tr.actor = "agent-7";
  tr.note = "starting";
  ASSERT_TRUE(svc_->Transition(a.id, tr).ok());
  auto events = svc_->Events(a.id);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].from_status, "pending");
  EXPECT_EQ((*events)[1].to_status, "active");
  EXPECT_EQ((*events)[1].actor, "agent-7");
  EXPECT_EQ(svc_->GetTask(a.id)->assigned_agent, "agent-7");
}

TEST_F(TaskServiceTest, GraphOrderLevelsCriticalPath) {
  TaskInput in;
  in.title = "a";
  in.estimated_minutes = 3;
  Task a = svc_->CreateTask(phase_.id, in).value();
  in.title = "b";
  in.estimated_minutes = 8;
  in.depends_on = {{a.id, "blocking"}};
  Task b = svc_->CreateTask(phase_.id, in).value();
  in.title = "c";
  in.estimated_minutes = 2;
  in.depends_on = {};
  Task c = svc_->CreateTask(phase_.id, in).value();
  auto g = svc_->Graph(plan_.id);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->critical_path, (std::vector<std::string>{a.id, b.id}));
  EXPECT_EQ(g->critical_path_minutes, 11);
  ASSERT_EQ(g->levels.size(), 2u);
  EXPECT_EQ(g->levels[0].size(), 2u);
  EXPECT_EQ(g->order.size(), 3u);
  EXPECT_EQ(g->progress.total, 3);
  (void)c;
}

TEST_F(TaskServiceTest, PaginationWalksAllTasksOnce) {
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) created.insert(NewTask("t" + std::to_string(i)).id);
  std::set<std::string> seen;
  TaskFilter f;
  f.limit = 3;
  int pages = 0;
  for (;;) {
    auto page = svc_->ListTasks(f);
    ASSERT_TRUE(page.ok());
    ++pages;
    for (const auto& t : page->items) EXPECT_TRUE(seen.insert(t.id).second);
    if (!page->next_cursor) break;
    f.cursor = page->next_cursor;
  }
  EXPECT_EQ(seen, created);
  EXPECT_EQ(pages, 3);
  f.cursor = "garbage!";
  EXPECT_EQ(svc_->ListTasks(f).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TaskServiceTest, DependencyAcrossPlansIsRejected) {
  PlanInput pi;
  pi.title = "Other";
  Plan other = svc_->CreatePlan(pi).value();
  PhaseInput ph;
  ph.name = "x";
  Phase op = svc_->CreatePhase(other.id, ph).value();
  Task foreign = NewTask("foreign", 5, {}, op.id);
  Task a = NewTask("a");
  EXPECT_EQ(svc_->AddDependency(a.id, {foreign.id, "blocking"}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(TaskServiceTest, DeletePlanCascades) {
  Task a = NewTask("a");
  ASSERT_TRUE(svc_->DeletePlan(plan_.id, std::nullopt).ok());
  EXPECT_EQ(svc_->GetTask(a.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(svc_->GetPhase(phase_.id).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ds::tasks
