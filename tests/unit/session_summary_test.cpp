// Work sessions and the engine's task -> memory link, against real services
// (OpenServices on a temp database):
//  - SessionService: start (keyed by external id), end (idempotent, queues
//    one summary job), Get, Latest (writes a missing summary), Summarize;
//  - RenderSummary golden files for a scripted digest and an empty one, and
//    an end-to-end scripted session whose summary (ids and times replaced by
//    placeholders) equals a golden file;
//  - TaskWorkflow: the completion memory, its backfill, RelevantMemories.
// Golden files live in tests/golden/; run with DEVSTREAM_UPDATE_GOLDEN=1 to
// rewrite them after an intended change (then review the diff).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "app/services.h"
#include "core/json.h"
#include "engine/session_service.h"
#include "engine/task_workflow.h"
#include "test_util.h"

#ifndef DEVSTREAM_SOURCE_DIR
#error "tests/CMakeLists.txt defines DEVSTREAM_SOURCE_DIR for the golden files"
#endif

namespace ds::engine {
namespace {

std::string GoldenPath(const std::string& name) {
  return std::string(DEVSTREAM_SOURCE_DIR) + "/tests/golden/" + name;
}

// Compares `actual` with the golden file (or rewrites it when
// DEVSTREAM_UPDATE_GOLDEN is set).
void ExpectGolden(const std::string& name, const std::string& actual) {
  std::string path = GoldenPath(name);
  if (const char* u = std::getenv("DEVSTREAM_UPDATE_GOLDEN"); u && *u) {
    std::ofstream out(path, std::ios::binary);
    out << actual;
    ASSERT_TRUE(out.good()) << "cannot write " << path;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing golden file " << path
                         << " (run with DEVSTREAM_UPDATE_GOLDEN=1 to create it)";
  std::stringstream buf;
  buf << in.rdbuf();
  EXPECT_EQ(actual, buf.str()) << "differs from " << path;
}

// Ids, timestamps, memory ids and durations replaced by placeholders.
std::string Normalize(std::string text) {
  static const std::regex ids("\\b(ses|tsk|pln|phs|prj)_[0-9A-Z]{26}\\b");
  static const std::regex times("\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z");
  static const std::regex memory("\\(memory \\d+\\)");
  static const std::regex minutes("\\(\\d+ min\\)");
  text = std::regex_replace(text, ids, "$1_<id>");
  text = std::regex_replace(text, times, "<time>");
  text = std::regex_replace(text, memory, "(memory <id>)");
  text = std::regex_replace(text, minutes, "(<n> min)");
  return text;
}

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

// ---------------------------------------------------------------------------
// RenderSummary (pure)

SessionDigest ScriptedDigest() {
  SessionDigest d;
  d.session.id = "ses_01JQ3ZK8W6Y0SESSIONFIXED0";
  d.session.project_id = "prj_01JQ3ZK8W6Y0PROJECTFIXED0";
  d.session.agent = "claude-code";
  d.session.external_id = "cc-session-42";
  d.session.status = "ended";
  d.session.started_at = "2025-03-04T09:00:00.000Z";
  d.session.ended_at = "2025-03-04T10:15:30.500Z";
  d.session.updated_at = "2025-03-04T10:15:30.500Z";
  d.project_name = "devstream";
  d.completed = {
      {"tsk_01JQ3ZK8W6Y0TASKFIXED0001", "Add lease columns", "coding",
       "Added lease_owner and lease_expires_at\nThis second line is not shown."},
      {"tsk_01JQ3ZK8W6Y0TASKFIXED0002", "Survey job queues", "research", ""},
      {"tsk_01JQ3ZK8W6Y0TASKFIXED0003", "Review the reaper", "review",
       "The reaper is fine. " + std::string(60, 'a') + " " + std::string(60, 'b') + " " +
           std::string(60, 'c') + " and this tail is cut off"},
  };
  d.files = {"docs/queues.md", "src/store/migrations/0003_task_engine.sql",
             "src/tasks/task_service.cpp"};
  d.decisions = {{12, "Claims run in one BEGIN IMMEDIATE transaction"}};
  d.errors = {{13, "Fixed: two workers could claim the same job under contention"},
              {15, "Fixed: the heartbeat thread outlived Stop()"}};
  d.learnings = {{14, "SQLite's backup API copies a WAL database consistently"}};
  return d;
}

TEST(RenderSummaryTest, ScriptedDigestMatchesGolden) {
  std::string text = RenderSummary(ScriptedDigest());
  ExpectGolden("session_summary_scripted.md", text);
  // Pure: the same digest renders the same text.
  EXPECT_EQ(RenderSummary(ScriptedDigest()), text);
}

TEST(RenderSummaryTest, EmptyDigestMatchesGolden) {
  SessionDigest d;
  d.session.id = "ses_01JQ3ZK8W6Y0SESSIONEMPTY0";
  d.session.agent = "";
  d.session.status = "ended";
  d.session.started_at = "2025-03-04T09:00:00.000Z";
  d.session.ended_at = "2025-03-04T09:00:59.999Z";
  d.project_name = "default";
  ExpectGolden("session_summary_empty.md", RenderSummary(d));
}

TEST(RenderSummaryTest, MissingSectionsSayNoneAndOpenSessionsRunToNow) {
  SessionDigest d;
  d.session.id = "ses_x";
  d.session.agent = "a";
  d.session.started_at = "2025-03-04T09:00:00.000Z";
  d.project_name = "p";
  d.decisions = {{7, "Only a decision"}};
  EXPECT_EQ(RenderSummary(d),
            "# Session summary: ses_x (a)\n\n"
            "Project p, 2025-03-04T09:00:00.000Z to now.\n\n"
            "## Tasks completed (0)\n- none\n\n"
            "## Files touched (0)\n- none\n\n"
            "## Decisions (1)\n- Only a decision (memory 7)\n\n"
            "## Errors fixed (0)\n- none\n\n"
            "## Learnings (0)\n- none\n");
}

TEST(RenderSummaryTest, NormalizeReplacesIdsAndTimes) {
  EXPECT_EQ(Normalize("ses_01JQ3ZK8W6Y0ABCDEFGHJKMNPQ at 2025-03-04T09:00:00.000Z (memory 12) "
                      "(75 min)"),
            "ses_<id> at <time> (memory <id>) (<n> min)");
}

// ---------------------------------------------------------------------------
// SessionService over real services

class SessionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ds::testing::TempDir();
    auto s = app::OpenServices(dir_ + "/devstream.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sv_ = std::move(s).value();
  }

  void TearDown() override {
    sv_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Database& db() { return *sv_->db; }
  SessionService& sessions() { return *sv_->sessions; }

  Session StartSession(std::optional<std::string> external_id = std::nullopt,
                       std::optional<std::string> project = std::nullopt) {
    SessionInput in;
    in.agent = "claude-code";
    in.external_id = std::move(external_id);
    in.project = std::move(project);
    auto r = sessions().Start(in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->first : Session{};
  }

  memory::Memory Remember(const std::string& content, const std::string& type,
                          std::optional<std::string> session_id = std::nullopt,
                          std::optional<std::string> file_path = std::nullopt,
                          std::optional<std::string> project = std::nullopt) {
    memory::MemoryInput in;
    in.content = content;
    in.content_type = type;
    in.session_id = std::move(session_id);
    in.file_path = std::move(file_path);
    in.project = std::move(project);
    auto r = sv_->memory->Store(in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->memory : memory::Memory{};
  }

  // A plan/phase in the default project for workflow tasks.
  tasks::Phase NewPhase() {
    tasks::PlanInput pi;
    pi.title = "Leases";
    auto plan = sv_->tasks->CreatePlan(pi).value();
    tasks::PhaseInput ph;
    ph.name = "Build";
    return sv_->tasks->CreatePhase(plan.id, ph).value();
  }

  tasks::Task NewTask(const tasks::Phase& phase, const std::string& title, const std::string& type,
                      std::vector<std::string> output_files, const std::string& notes = "") {
    tasks::TaskInput ti;
    ti.title = title;
    ti.task_type = type;
    ti.output_files = std::move(output_files);
    ti.notes = notes;
    auto t = sv_->tasks->CreateTask(phase.id, ti);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : tasks::Task{};
  }

  // pending -> active -> completed through TaskWorkflow, as an adapter would.
  tasks::Task CompleteViaWorkflow(const tasks::Task& t, const std::string& note) {
    tasks::TransitionInput in;
    in.to = "active";
    in.actor = "claude-code";
    EXPECT_TRUE(sv_->workflow->Transition(t.id, in).ok());
    in.to = "completed";
    in.note = note;
    auto r = sv_->workflow->Transition(t.id, in);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : tasks::Task{};
  }

  std::string dir_;
  std::unique_ptr<app::Services> sv_;
};

TEST_F(SessionServiceTest, StartWithSameExternalIdReturnsTheSameSession) {
  SessionInput in;
  in.agent = "claude-code";
  in.external_id = "cc-123";
  auto first = sessions().Start(in);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->second);
  EXPECT_EQ(first->first.status, "active");
  EXPECT_EQ(first->first.agent, "claude-code");
  EXPECT_EQ(first->first.external_id, "cc-123");
  auto second = sessions().Start(in);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first.id, first->first.id);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM work_sessions"), 1);
  // Found by either id.
  EXPECT_EQ(sessions().Get("cc-123")->id, first->first.id);
  EXPECT_EQ(sessions().Get(first->first.id)->external_id, "cc-123");
  EXPECT_EQ(sessions().Get("ses_missing").status().code(), StatusCode::kNotFound);
  // Without an external id every start is a new session.
  SessionInput plain;
  auto a = sessions().Start(plain);
  auto b = sessions().Start(plain);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->second && b->second);
  EXPECT_NE(a->first.id, b->first.id);
  // The same external id in another project is another session.
  in.project = "other";
  auto elsewhere = sessions().Start(in);
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_TRUE(elsewhere->second);
  EXPECT_NE(elsewhere->first.id, first->first.id);
}

TEST_F(SessionServiceTest, StartingAnEndedExternalSessionReopensIt) {
  Session s = StartSession("cc-9");
  ASSERT_TRUE(sessions().End(s.id).ok());
  SessionInput in;
  in.external_id = "cc-9";
  auto again = sessions().Start(in);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.id, s.id);
  EXPECT_EQ(again->first.status, "active");
  EXPECT_FALSE(again->first.ended_at);
}

TEST_F(SessionServiceTest, StartValidatesPlan) {
  SessionInput in;
  in.plan_id = "pln_missing";
  auto r = sessions().Start(in);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  tasks::PlanInput pi;
  pi.title = "elsewhere";
  pi.project = "other";
  auto plan = sv_->tasks->CreatePlan(pi).value();
  in.plan_id = plan.id;
  EXPECT_EQ(sessions().Start(in).status().code(), StatusCode::kInvalidArgument);
  in.project = "other";
  auto ok = sessions().Start(in);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->first.plan_id, plan.id);
}

TEST_F(SessionServiceTest, EndIsIdempotentAndQueuesOneSummaryJob) {
  Session s = StartSession();
  auto e1 = sessions().End(s.id);
  ASSERT_TRUE(e1.ok()) << e1.status().ToString();
  EXPECT_EQ(e1->status, "ended");
  ASSERT_TRUE(e1->ended_at);
  auto e2 = sessions().End(s.id);
  ASSERT_TRUE(e2.ok());
  EXPECT_EQ(e2->status, "ended");
  EXPECT_EQ(e2->ended_at, e1->ended_at);
  EXPECT_EQ(e2->updated_at, e1->updated_at);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM jobs WHERE kind = 'session_summary'"), 1);
  JobFilter f;
  f.kind = "session_summary";
  auto jobs = sv_->jobs->List(f);
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->items.size(), 1u);
  EXPECT_EQ(jobs->items[0].state, "queued");
  EXPECT_EQ(ParseJson(jobs->items[0].payload).value().as_object().at("session_id").as_string(),
            s.id);
  EXPECT_EQ(sessions().End("ses_missing").status().code(), StatusCode::kNotFound);
}

TEST_F(SessionServiceTest, SummarizeRequiresAnEndedSessionAndIsIdempotent) {
  Session s = StartSession();
  EXPECT_EQ(sessions().Summarize(s.id).status().code(), StatusCode::kConflict);
  ASSERT_TRUE(sessions().End(s.id).ok());
  auto a = sessions().Summarize(s.id);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = sessions().Summarize(s.id);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->summary, b->summary);
  EXPECT_EQ(a->summary_memory_id, b->summary_memory_id);
  ASSERT_TRUE(a->summary_memory_id);
  auto m = sv_->memory->Get(*a->summary_memory_id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->content, a->summary);
  EXPECT_EQ(m->content_type, "context");
  EXPECT_EQ(m->source, "engine");
  EXPECT_EQ(m->session_id, s.id);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory WHERE content_type = 'context'"),
            1);
}

TEST_F(SessionServiceTest, ScriptedSessionSummaryMatchesGolden) {
  tasks::Phase phase = NewPhase();
  tasks::Task coding =
      NewTask(phase, "Add lease columns", "coding",
              {"src/tasks/task_service.cpp", "src/store/migrations/0003_task_engine.sql"},
              "keep the migration reversible");
  tasks::Task research = NewTask(phase, "Survey job queues", "research", {"docs/queues.md"});
  NewTask(phase, "Left for tomorrow", "coding", {"src/never.cc"});
  // Before the session: not part of it.
  Remember("An older decision from yesterday", "decision");
  Remember("An error in another project", "error", std::nullopt, std::nullopt,
           std::string("other"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  Session s = StartSession("cc-scripted");
  CompleteViaWorkflow(coding, "Added lease_owner and lease_expires_at\nwith an index on expiry");
  CompleteViaWorkflow(research, "Chose a SQLite-backed queue over Redis");
  Remember("Claims run in one BEGIN IMMEDIATE transaction\nso two claimers never collide",
           "decision", s.id);
  Remember("Fixed: the reaper skipped leases expiring in the same millisecond", "error",
           std::nullopt, std::string("src/engine/worker.cpp"));
  Remember("SQLite's backup API copies a WAL database consistently", "learning", s.id);
  Remember("Plain context is not listed", "context", s.id);
  // Another project's memory inside the time range is not part of it either.
  Remember("A decision in another project", "decision", std::nullopt, std::nullopt,
           std::string("other"));

  auto ended = sessions().End(s.id);
  ASSERT_TRUE(ended.ok()) << ended.status().ToString();
  auto summarized = sessions().Summarize(s.id);
  ASSERT_TRUE(summarized.ok()) << summarized.status().ToString();
  ExpectGolden("session_summary_e2e.md", Normalize(summarized->summary));

  // The digest behind it, checked directly too.
  auto d = sessions().Digest(s.id);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->completed.size(), 2u);
  EXPECT_EQ(d->completed[0].id, coding.id);
  EXPECT_EQ(d->completed[1].id, research.id);
  EXPECT_EQ(d->files, (std::vector<std::string>{"docs/queues.md", "src/engine/worker.cpp",
                                                "src/store/migrations/0003_task_engine.sql",
                                                "src/tasks/task_service.cpp"}));
  EXPECT_EQ(d->decisions.size(), 1u);
  EXPECT_EQ(d->errors.size(), 1u);
  EXPECT_EQ(d->learnings.size(), 1u);
  EXPECT_EQ(d->project_name, "default");
  // The summary names the real ids.
  EXPECT_NE(summarized->summary.find(coding.id), std::string::npos);
  EXPECT_NE(summarized->summary.find(s.id), std::string::npos);
}

TEST_F(SessionServiceTest, EmptySessionSummaryMatchesGolden) {
  Session s = StartSession();
  ASSERT_TRUE(sessions().End(s.id).ok());
  auto summarized = sessions().Summarize(s.id);
  ASSERT_TRUE(summarized.ok()) << summarized.status().ToString();
  ExpectGolden("session_summary_e2e_empty.md", Normalize(summarized->summary));
  EXPECT_NE(summarized->summary.find("No tasks were completed"), std::string::npos);
}

TEST_F(SessionServiceTest, LatestWritesTheSummaryWhenTheJobHasNotRun) {
  EXPECT_EQ(sessions().Latest(std::nullopt).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sessions().Latest(std::string("nope")).status().code(), StatusCode::kNotFound);
  Session older = StartSession();
  ASSERT_TRUE(sessions().End(older.id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Session s = StartSession();
  Remember("Picked the hash embedder for tests", "decision", s.id);
  Session still_active = StartSession();  // active sessions are not "latest"
  ASSERT_TRUE(sessions().End(s.id).ok());
  EXPECT_TRUE(sessions().Get(s.id)->summary.empty());  // no worker ran

  auto latest = sessions().Latest(std::nullopt);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(latest->id, s.id);
  EXPECT_FALSE(latest->summary.empty());
  EXPECT_NE(latest->summary.find("Picked the hash embedder"), std::string::npos);
  ASSERT_TRUE(latest->summary_memory_id);
  // Stored, not only returned; asking again returns the same.
  Session stored = sessions().Get(s.id).value();
  EXPECT_EQ(stored.summary, latest->summary);
  EXPECT_EQ(stored.summary_memory_id, latest->summary_memory_id);
  auto again = sessions().Latest(std::string("default"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->summary_memory_id, latest->summary_memory_id);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory WHERE content_type = 'context'"),
            1);
  (void)still_active;
}

TEST(DecodeSessionInputTest, ReadsFieldsAndHeaderAgent) {
  auto in = DecodeSessionInput(ParseJson(R"({"project":"p","external_id":"e"})").value(),
                               std::string("hdr"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->project, "p");
  EXPECT_EQ(in->external_id, "e");
  EXPECT_EQ(in->agent, "hdr");
  auto body_agent = DecodeSessionInput(ParseJson(R"({"agent":"body"})").value(), std::string("h"));
  ASSERT_TRUE(body_agent.ok());
  EXPECT_EQ(body_agent->agent, "body");
  auto none = DecodeSessionInput(ParseJson("{}").value(), std::nullopt);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->agent);
  for (const char* bad : {R"({"bogus":1})", R"({"agent":""})", R"({"project":5})", "[]"}) {
    EXPECT_EQ(DecodeSessionInput(ParseJson(bad).value(), std::nullopt).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
}

// ---------------------------------------------------------------------------
// TaskWorkflow: completed tasks and memories form one graph.

using TaskWorkflowTest = SessionServiceTest;

TEST_F(TaskWorkflowTest, CompletingACodingTaskStoresOneOutputMemory) {
  tasks::Phase phase = NewPhase();
  tasks::Task t = NewTask(phase, "Write the parser", "coding", {"src/parser.cc", "src/parser.h"},
                          "use a hand-written lexer");
  tasks::Task done = CompleteViaWorkflow(t, "parser handles nested blocks");
  ASSERT_EQ(done.status, "completed");

  memory::MemoryFilter f;
  f.task_id = t.id;
  auto list = sv_->memory->List(f);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->items.size(), 1u);
  const memory::Memory& m = list->items[0];
  EXPECT_EQ(m.content_type, "output");
  EXPECT_EQ(m.source, "engine");
  EXPECT_EQ(m.task_id, t.id);
  EXPECT_EQ(m.phase_id, phase.id);
  EXPECT_EQ(m.plan_id, phase.plan_id);
  EXPECT_EQ(m.content, CompletionMemoryText(done, "parser handles nested blocks"));
  EXPECT_NE(m.content.find("Write the parser"), std::string::npos);
  EXPECT_NE(m.content.find("parser handles nested blocks"), std::string::npos);
  EXPECT_NE(m.content.find("use a hand-written lexer"), std::string::npos);
  EXPECT_NE(m.content.find("src/parser.cc, src/parser.h"), std::string::npos);
  EXPECT_EQ(m.keywords, (std::vector<std::string>{"src/parser.cc", "src/parser.h"}));

  // Recording it again finds the same memory.
  auto again = sv_->workflow->RecordCompletion(done, "parser handles nested blocks");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->memory.id, m.id);
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory WHERE task_id = '" + t.id + "'"),
            1);
  // Nothing to backfill.
  EXPECT_EQ(sv_->workflow->BackfillCompletionMemories().value(), 0);
}

TEST_F(TaskWorkflowTest, ResearchTaskLeavesALearningAndOtherTransitionsLeaveNothing) {
  tasks::Phase phase = NewPhase();
  tasks::Task r = NewTask(phase, "Compare queues", "research", {"docs/queues.md"});
  tasks::Task done = CompleteViaWorkflow(r, "SQLite is enough");
  memory::MemoryFilter f;
  f.task_id = r.id;
  auto list = sv_->memory->List(f);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].content_type, "learning");

  // A task that fails (or is only started) gets no completion memory.
  tasks::Task f2 = NewTask(phase, "Doomed", "coding", {});
  tasks::TransitionInput in;
  in.to = "active";
  ASSERT_TRUE(sv_->workflow->Transition(f2.id, in).ok());
  in.to = "failed";
  in.note = "gave up";
  ASSERT_TRUE(sv_->workflow->Transition(f2.id, in).ok());
  EXPECT_EQ(QueryInt(db(), "SELECT count(*) FROM semantic_memory WHERE task_id = '" + f2.id + "'"),
            0);
  (void)done;
}

TEST_F(TaskWorkflowTest, BackfillWritesMissingCompletionMemories) {
  tasks::Phase phase = NewPhase();
  tasks::Task t = NewTask(phase, "Done behind the engine's back", "coding", {"src/x.cc"});
  tasks::TransitionInput in;
  in.to = "active";
  ASSERT_TRUE(sv_->tasks->Transition(t.id, in).ok());
  in.to = "completed";
  in.note = "finished outside the workflow";
  auto done = sv_->tasks->Transition(t.id, in);  // TaskService directly: no memory
  ASSERT_TRUE(done.ok());
  const std::string count =
      "SELECT count(*) FROM semantic_memory WHERE task_id = '" + t.id + "' AND source = 'engine'";
  EXPECT_EQ(QueryInt(db(), count), 0);

  auto n = sv_->workflow->BackfillCompletionMemories();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(QueryInt(db(), count), 1);
  memory::MemoryFilter f;
  f.task_id = t.id;
  auto list = sv_->memory->List(f);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 1u);
  // The same text the workflow would have written, with the event's note.
  EXPECT_EQ(list->items[0].content, CompletionMemoryText(*done, "finished outside the workflow"));
  EXPECT_EQ(list->items[0].content_type, "output");
  EXPECT_EQ(sv_->workflow->BackfillCompletionMemories().value(), 0);
  EXPECT_EQ(QueryInt(db(), count), 1);
}

TEST_F(TaskWorkflowTest, RelevantMemoriesExcludeTheTasksOwnMemory) {
  tasks::Phase phase = NewPhase();
  tasks::Task t =
      NewTask(phase, "Tune the tokenizer for identifiers", "coding", {"src/memory/tokenizer.cc"});
  tasks::Task done = CompleteViaWorkflow(t, "tokenizer splits identifiers on case changes");
  auto other = Remember(
      "The tokenizer for identifiers must split snake_case and camelCase (src/memory/tokenizer.cc)",
      "learning");
  auto unrelated = Remember("Backups are copied with the online backup API", "decision");

  memory::MemoryFilter f;
  f.task_id = t.id;
  auto own = sv_->memory->List(f).value();
  ASSERT_EQ(own.items.size(), 1u);
  int64_t own_id = own.items[0].id;

  auto hits = sv_->workflow->RelevantMemories(done, 5);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  bool found_other = false;
  for (const auto& h : *hits) {
    EXPECT_NE(h.memory.id, own_id) << "the task's own completion memory was returned";
    if (h.memory.id == other.id) found_other = true;
  }
  EXPECT_TRUE(found_other);
  ASSERT_FALSE(hits->empty());
  EXPECT_EQ(hits->front().memory.id, other.id);
  // The limit holds even after the own memory is dropped.
  auto one = sv_->workflow->RelevantMemories(done, 1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->front().memory.id, other.id);
  // Search access counts were not bumped.
  EXPECT_EQ(sv_->memory->Get(other.id)->access_count, 0);
  (void)unrelated;
}

}  // namespace
}  // namespace ds::engine
