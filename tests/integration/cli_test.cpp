// The devstream CLI as users run it: exit codes, --json output, --help.
#include <gtest/gtest.h>

#include "harness.h"

namespace ds::itest {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = TempDir() + "/cli.db"; }
  CommandResult Run(std::vector<std::string> args) {
    args.push_back("--db");
    args.push_back(db_);
    return RunCli(args);
  }
  std::string JsonId(const CommandResult& r) {
    json::error_code ec;
    auto v = json::parse(r.out, ec);
    if (ec || !v.is_object()) return "";
    return std::string(v.at("id").as_string());
  }
  std::string db_;
};

TEST_F(CliTest, WalkthroughWithJsonOutput) {
  auto plan = Run({"--json", "plan", "create", "--title", "CLI plan", "--objective", "ship"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  std::string plan_id = JsonId(plan);
  auto phase = Run({"--json", "phase", "create", plan_id, "--name", "Work"});
  ASSERT_EQ(phase.exit_code, 0) << phase.err;
  std::string phase_id = JsonId(phase);
  auto a = Run({"--json", "task", "create", phase_id, "--title", "First", "--estimate", "3"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b =
      Run({"--json", "task", "create", phase_id, "--title", "Second", "--depends-on", JsonId(a)});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto start_b = Run({"task", "transition", JsonId(b), "active"});
  EXPECT_EQ(start_b.exit_code, 1);
  EXPECT_NE(start_b.err.find("waiting for"), std::string::npos) << start_b.err;
  auto ready = Run({"task", "ready"});
  ASSERT_EQ(ready.exit_code, 0);
  EXPECT_NE(ready.out.find("First"), std::string::npos);
  EXPECT_EQ(ready.out.find("Second"), std::string::npos);
  EXPECT_EQ(Run({"task", "transition", JsonId(a), "active"}).exit_code, 0);
  EXPECT_EQ(Run({"task", "transition", JsonId(a), "completed", "--note", "ok"}).exit_code, 0);
  auto events = Run({"--json", "task", "events", JsonId(a)});
  ASSERT_EQ(events.exit_code, 0);
  auto ev = json::parse(events.out).at("items").as_array();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2].at("actor").as_string(), "cli");
  auto graph = Run({"plan", "graph", plan_id});
  EXPECT_EQ(graph.exit_code, 0);
  EXPECT_NE(graph.out.find("critical path"), std::string::npos);
  auto dep_cycle = Run({"task", "depend", JsonId(a), JsonId(b)});
  EXPECT_EQ(dep_cycle.exit_code, 1);
  EXPECT_NE(dep_cycle.err.find("cycle"), std::string::npos);
}

TEST_F(CliTest, UsageErrorsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"plan", "create"},                                      // missing --title
           {"plan", "create", "--title", "x", "--priority", "11"},  // out of range
           {"plan", "create", "--title", "x", "--priority", "high"},
           {"plan", "list", "--bogus"},
           {"task", "transition", "tsk_x"},
           {"task", "list", "--limit", "0"},
       }) {
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos);
  }
  auto unknown = RunCli({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  auto none = RunCli({});
  EXPECT_EQ(none.exit_code, 2);
}

// Only the command the line names is built (cli_support.h CommandDef): the
// global options before it, and their values, must not be taken for it.
TEST_F(CliTest, GlobalOptionsMayPrecedeTheCommand) {
  auto version = RunCli({"--db", "plan", "--json", "version"});
  ASSERT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(json::parse(version.out).at("name").as_string(), "devstream");
  auto created = RunCli({"--json", "--db", db_, "project", "create", "early"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto listed = RunCli({"--db=" + db_, "project", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("early"), std::string::npos);
  auto unknown = RunCli({"--json", "--env", "development", "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"frobnicate\""), std::string::npos) << unknown.err;
}

TEST_F(CliTest, NotFoundExitsOne) {
  auto r = Run({"task", "show", "tsk_00000000000000000000000000"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos);
}

TEST_F(CliTest, HelpDocumentsCommands) {
  auto top = RunCli({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* cmd : {"serve", "migrate", "plan", "phase", "task", "version", "project"}) {
    EXPECT_NE(top.out.find(cmd), std::string::npos) << cmd;
  }
  auto sub = RunCli({"task", "create", "--help"});
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("--depends-on"), std::string::npos);
  EXPECT_NE(RunCli({"version"}).out.find("devstream"), std::string::npos);
}

TEST_F(CliTest, MigrateCommands) {
  auto missing = Run({"migrate", "status"});
  EXPECT_EQ(missing.exit_code, 1) << "status must not create a database";
  EXPECT_NE(missing.err.find("no database"), std::string::npos);
  EXPECT_EQ(Run({"migrate", "up"}).exit_code, 0);
  auto status = Run({"--json", "migrate", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("applied"), std::string::npos);
  auto verify = Run({"migrate", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("0 pending"), std::string::npos);
  EXPECT_EQ(Run({"migrate", "down", "1"}).exit_code, 0);
  EXPECT_NE(Run({"migrate", "status"}).out.find("pending"), std::string::npos);
}

}  // namespace
}  // namespace ds::itest
