// The acceptance test of task leases: 1,000 pending tasks claimed concurrently
// by HTTP clients of two API server processes and by CLI processes, all on the
// same SQLite file. Every task must be claimed exactly once, completed by its
// claimer, audited with the claiming agent, and no claimer may ever see the
// database's lock contention (a 5xx, "database is locked" or "database busy").
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace ds::itest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTasks = 1000;
constexpr int kHttpClaimers = 8;
constexpr int kCliClaimers = 2;
// The claim phase must finish well within this (ASan, 2 cores).
constexpr auto kClaimBudget = std::chrono::seconds(100);

// What a claimer saw that it should never see from a healthy server.
bool LooksLikeLockTrouble(const std::string& text) {
  return text.find("database is locked") != std::string::npos ||
         text.find("database busy") != std::string::npos ||
         text.find("SQLITE_BUSY") != std::string::npos;
}

std::string IdOf(const json::value& v) {
  if (!v.is_object() || !v.as_object().contains("id") || !v.at("id").is_string()) return "";
  return std::string(v.at("id").as_string());
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Everything the claimers record, guarded by one mutex.
struct Ledger {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> claims;  // (task id, agent)
  std::vector<std::string> problems;
  std::map<std::string, int> per_agent;

  void Claimed(const std::string& task, const std::string& agent) {
    std::lock_guard<std::mutex> lock(mu);
    claims.emplace_back(task, agent);
    ++per_agent[agent];
  }
  void Problem(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (problems.size() < 50) problems.push_back(what);
  }
  size_t problem_count() {
    std::lock_guard<std::mutex> lock(mu);
    return problems.size();
  }
};

// Removes a directory when the test ends, however it ends (declared before
// the processes that write into it, so it goes after them).
struct RemoveOnExit {
  std::string dir;
  ~RemoveOnExit() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

TEST(MultiprocessClaimTest, ThousandTasksClaimedExactlyOnceByServersAndCliProcesses) {
  const std::string dir = TempDir();
  RemoveOnExit cleanup{dir};
  const std::string db = dir + "/claim.db";
  auto t_start = Clock::now();

  ServerProcess a(db, {"--mode", "api"});
  ASSERT_TRUE(a.Start()) << "server A did not start";
  ServerProcess b(db, {"--mode", "api"});
  ASSERT_TRUE(b.Start()) << "server B did not start";
  const int ports[2] = {a.port(), b.port()};

  // ---- setup: one plan, one phase, kTasks pending tasks (through both servers) ----
  auto plan = Http(a.port(), "POST", "/api/v1/plans", R"({"title":"Claim load"})");
  ASSERT_EQ(plan.status, 201) << plan.body;
  const std::string plan_id = IdOf(plan.Json());
  auto phase =
      Http(a.port(), "POST", "/api/v1/plans/" + plan_id + "/phases", R"({"name":"Everything"})");
  ASSERT_EQ(phase.status, 201) << phase.body;
  const std::string phase_id = IdOf(phase.Json());

  std::vector<std::string> created(kTasks);
  std::atomic<int> create_failures{0};
  std::string first_create_failure;
  std::mutex create_mu;
  {
    constexpr int kCreators = 4;
    std::vector<std::thread> creators;
    for (int c = 0; c < kCreators; ++c) {
      creators.emplace_back([&, c] {
        for (int i = c; i < kTasks; i += kCreators) {
          std::string body = R"({"title":"load task )" + std::to_string(i) +
                             R"(","task_type":"coding","estimated_minutes":1})";
          auto r = Http(ports[i % 2], "POST", "/api/v1/phases/" + phase_id + "/tasks", body);
          created[static_cast<size_t>(i)] = r.status == 201 ? IdOf(r.Json()) : "";
          if (r.status != 201) {
            std::lock_guard<std::mutex> lock(create_mu);
            if (create_failures++ == 0) {
              first_create_failure = std::to_string(r.status) + " " + r.body;
            }
          }
        }
      });
    }
    for (auto& t : creators) t.join();
  }
  ASSERT_EQ(create_failures.load(), 0) << first_create_failure;
  const std::set<std::string> created_set(created.begin(), created.end());
  ASSERT_EQ(created_set.size(), static_cast<size_t>(kTasks));
  auto t_setup = Clock::now();

  // ---- the race: 8 HTTP claimers over two servers, 2 CLI claimer processes ----
  Ledger ledger;
  const auto deadline = Clock::now() + kClaimBudget;
  // HTTP claimers start once some CLI claim returned, so that process
  // startup (slow under ASan) does not leave the CLI claimers without work.
  std::atomic<bool> cli_started{false};

  auto http_claimer = [&](int n) {
    const std::string agent = "http" + std::to_string(n);
    const int port = ports[n % 2];
    auto gate = Clock::now() + std::chrono::seconds(30);
    while (!cli_started && Clock::now() < gate) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const std::string claim_body =
        R"({"agent":")" + agent + R"(","lease_seconds":300,"plan_id":")" + plan_id + R"("})";
    const std::string done_body = R"({"to":"completed","actor":")" + agent + R"("})";
    for (;;) {
      if (Clock::now() > deadline) {
        ledger.Problem(agent + ": claim phase ran out of time");
        return;
      }
      auto r = Http(port, "POST", "/api/v1/tasks/claim", claim_body);
      if (r.status == 204) return;
      if (r.status != 200 || LooksLikeLockTrouble(r.body)) {
        ledger.Problem(agent + " claim: HTTP " + std::to_string(r.status) + " " + r.body);
        if (r.status == 0 || r.status >= 500) continue;
        return;
      }
      std::string id = IdOf(r.Json());
      auto v = r.Json();
      if (id.empty() || v.at("lease_owner") != json::value(agent) ||
          v.at("status") != json::value("active")) {
        ledger.Problem(agent + " claim: unexpected body " + r.body);
        return;
      }
      ledger.Claimed(id, agent);
      auto done = Http(port, "POST", "/api/v1/tasks/" + id + "/transition", done_body);
      if (done.status != 200 || LooksLikeLockTrouble(done.body)) {
        ledger.Problem(agent + " complete " + id + ": HTTP " + std::to_string(done.status) + " " +
                       done.body);
      }
    }
  };

  auto cli_claimer = [&](int n) {
    const std::string agent = "cli" + std::to_string(n);
    for (;;) {
      if (Clock::now() > deadline) {
        ledger.Problem(agent + ": claim phase ran out of time");
        return;
      }
      auto r = RunCli({"--json", "task", "claim", "--agent", agent, "--lease", "300", "--plan",
                       plan_id, "--db", db},
                      {}, 60000);
      cli_started = true;
      if (LooksLikeLockTrouble(r.err) || LooksLikeLockTrouble(r.out)) {
        ledger.Problem(agent + " claim: " + r.err + r.out);
      }
      if (r.exit_code == 3) {
        if (r.out != "null\n") ledger.Problem(agent + " claim exit 3 printed: " + r.out);
        return;
      }
      if (r.exit_code != 0) {
        ledger.Problem(agent + " claim: exit " + std::to_string(r.exit_code) + " " + r.err);
        return;
      }
      json::error_code ec;
      json::value v = json::parse(r.out, ec);
      std::string id = ec ? "" : IdOf(v);
      if (id.empty() || v.at("lease_owner") != json::value(agent)) {
        ledger.Problem(agent + " claim: unexpected output " + r.out);
        return;
      }
      ledger.Claimed(id, agent);
      auto done =
          RunCli({"task", "transition", id, "completed", "--actor", agent, "--db", db}, {}, 60000);
      if (done.exit_code != 0 || LooksLikeLockTrouble(done.err)) {
        ledger.Problem(agent + " complete " + id + ": exit " + std::to_string(done.exit_code) +
                       " " + done.err);
      }
    }
  };

  std::vector<std::thread> claimers;
  for (int n = 0; n < kCliClaimers; ++n) claimers.emplace_back(cli_claimer, n);
  for (int n = 0; n < kHttpClaimers; ++n) claimers.emplace_back(http_claimer, n);
  for (auto& t : claimers) t.join();
  auto t_claimed = Clock::now();

  // ---- every task claimed exactly once, by exactly one claimer ----
  EXPECT_TRUE(ledger.problems.empty())
      << ledger.problems.size()
      << " problem(s), first: " << (ledger.problems.empty() ? "" : ledger.problems[0]);
  for (const auto& p : ledger.problems) ADD_FAILURE() << p;
  std::map<std::string, std::string> claimer_of;  // task -> agent
  std::vector<std::string> duplicates;
  for (const auto& [task, agent] : ledger.claims) {
    if (!claimer_of.emplace(task, agent).second) {
      duplicates.push_back(task + " (" + claimer_of[task] + " and " + agent + ")");
    }
  }
  EXPECT_TRUE(duplicates.empty()) << duplicates.size() << " task(s) claimed twice, e.g. "
                                  << (duplicates.empty() ? "" : duplicates[0]);
  EXPECT_EQ(ledger.claims.size(), static_cast<size_t>(kTasks));
  std::vector<std::string> missing;
  for (const auto& id : created_set) {
    if (!claimer_of.count(id)) missing.push_back(id);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " task(s) never claimed, e.g. "
                               << (missing.empty() ? "" : missing[0]);
  for (const auto& [task, agent] : claimer_of) {
    EXPECT_TRUE(created_set.count(task)) << "claimed a task that was not created: " << task;
  }
  int http_claims = 0, cli_claims = 0;
  for (const auto& [agent, n] : ledger.per_agent) {
    (agent.rfind("http", 0) == 0 ? http_claims : cli_claims) += n;
  }
  EXPECT_GT(http_claims, 0) << "no HTTP claimer got a task";
  EXPECT_GT(cli_claims, 0) << "no CLI claimer got a task";

  // ---- the database agrees: all completed, leases released, audit trail ----
  auto count = QueryDatabase(db,
                             "SELECT count(*), sum(status = 'completed'), sum(lease_owner IS NULL)"
                             " FROM micro_tasks WHERE phase_id = '" +
                                 phase_id + "'");
  ASSERT_EQ(count.size(), 1u);
  ASSERT_EQ(count[0].size(), 3u) << count[0][0];
  EXPECT_EQ(count[0][0], std::to_string(kTasks));
  EXPECT_EQ(count[0][1], std::to_string(kTasks)) << "tasks not completed";
  EXPECT_EQ(count[0][2], std::to_string(kTasks)) << "leases left behind";

  auto events = QueryDatabase(db,
                              "SELECT e.task_id, e.from_status, e.to_status, e.actor, e.note"
                              " FROM task_events e JOIN micro_tasks t ON t.id = e.task_id"
                              " WHERE t.phase_id = '" +
                                  phase_id +
                                  "' AND e.to_status IN ('active','completed')"
                                  " ORDER BY e.id");
  std::map<std::string, std::vector<std::string>> active_by, completed_by;
  for (const auto& row : events) {
    ASSERT_EQ(row.size(), 5u) << row[0];
    if (row[2] == "active") {
      EXPECT_EQ(row[1], "pending") << row[0];
      EXPECT_EQ(row[4].rfind("claimed with a 300 s lease", 0), 0u) << row[0] << ": " << row[4];
      active_by[row[0]].push_back(row[3]);
    } else {
      EXPECT_EQ(row[1], "active") << row[0];
      completed_by[row[0]].push_back(row[3]);
    }
  }
  int audit_mismatches = 0;
  for (const auto& [task, agent] : claimer_of) {
    std::vector<std::string> expected{agent};
    if (active_by[task] != expected || completed_by[task] != expected) {
      if (++audit_mismatches <= 5) {
        ADD_FAILURE() << "audit trail of " << task << " does not show exactly one claim and "
                      << "completion by " << agent << " (active by " << active_by[task].size()
                      << ", completed by " << completed_by[task].size() << ")";
      }
    }
  }
  EXPECT_EQ(audit_mismatches, 0);
  EXPECT_EQ(active_by.size(), static_cast<size_t>(kTasks));

  auto plan_now = Http(b.port(), "GET", "/api/v1/plans/" + plan_id);
  ASSERT_EQ(plan_now.status, 200) << plan_now.body;
  EXPECT_EQ(plan_now.Json().at("status"), json::value("completed"));
  EXPECT_EQ(plan_now.Json().at("progress").at("completed"), json::value(kTasks));
  auto none_left = Http(a.port(), "POST", "/api/v1/tasks/claim",
                        R"({"agent":"late","plan_id":")" + plan_id + R"("})");
  EXPECT_EQ(none_left.status, 204) << none_left.body;

  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
  std::string server_log = [&] {
    std::ifstream in(a.log_path());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  EXPECT_FALSE(LooksLikeLockTrouble(server_log)) << server_log.substr(0, 4000);

  std::cout << "[ multiprocess claim ] setup " << Seconds(t_setup - t_start) << " s, claims "
            << Seconds(t_claimed - t_setup) << " s; per claimer:";
  for (const auto& [agent, n] : ledger.per_agent) std::cout << " " << agent << "=" << n;
  std::cout << std::endl;
}

}  // namespace
}  // namespace ds::itest
