// The mixed workload of the load and multi-process tests: client threads
// doing reads, writes (memories, tasks), searches (hybrid search and context
// assembly), claims followed by completions, and MCP tool calls over
// Streamable HTTP, against one or more servers on one database. Every 2xx
// write is recorded (id and content) for a lost-write check; every claim is
// recorded for an exclusivity check; a 5xx, a dropped connection, an
// unexpected status or lock contention text in a body is a problem.
#pragma once

#include <random>

#include "reliability_util.h"

namespace ds::rtest {

struct WorkloadConfig {
  std::vector<int> ports;  // thread t talks to ports[t % size]
  std::string plan_id, phase_id;
  int threads = 12;
  std::string agent_prefix = "load";
  uint64_t seed = 1;
};

struct AckedMemoryWrite {
  int64_t id = 0;
  std::string content;
};

struct ClaimRecord {
  std::string task, agent, lease_expires_at;
  bool completed = false;
};

class MixedWorkload {
 public:
  explicit MixedWorkload(WorkloadConfig config) : cfg_(std::move(config)) {}

  // Initial data for reads and claims (each write checked like the others).
  void Seed(int memories, int tasks) {
    std::vector<std::thread> th;
    for (int t = 0; t < 4; ++t) {
      th.emplace_back([&, t] {
        Local local;
        for (int i = t; i < memories; i += 4)
          WriteMemory(local, Port(t), "seed" + std::to_string(i));
        for (int i = t; i < tasks; i += 4) WriteTask(local, Port(t), "seed" + std::to_string(i));
        MergeLocal(local);
      });
    }
    for (auto& x : th) x.join();
  }

  // Runs the threads for `seconds`. At `pause_at_s` (if >= 0) every thread
  // finishes its request and waits while `at_pause` runs (a quiescent
  // moment for measurements); the pause does not count towards `seconds`.
  void Run(double seconds, double pause_at_s = -1, const std::function<void()>& at_pause = {}) {
    stop_ = false;
    pause_ = false;
    paused_ = 0;
    std::vector<std::thread> th;
    const auto t0 = Clock::now();
    for (int t = 0; t < cfg_.threads; ++t) th.emplace_back([this, t] { Client(t); });
    double paused_for = 0;
    if (pause_at_s >= 0 && pause_at_s < seconds) {
      std::this_thread::sleep_until(t0 +
                                    std::chrono::milliseconds(static_cast<int>(pause_at_s * 1000)));
      const auto tp = Clock::now();
      pause_ = true;
      WaitUntil([&] { return paused_.load() == cfg_.threads; }, std::chrono::milliseconds(60000),
                std::chrono::milliseconds(5));
      if (at_pause) at_pause();
      pause_ = false;
      paused_for = MillisSince(tp) / 1000.0;
    }
    std::this_thread::sleep_until(
        t0 + std::chrono::milliseconds(static_cast<int>((seconds + paused_for) * 1000)));
    stop_ = true;
    for (auto& x : th) x.join();
    elapsed_s_ = MillisSince(t0) / 1000.0 - paused_for;
  }

  const LatencyBook& latencies() const { return book_; }
  double elapsed_s() const { return elapsed_s_; }
  const std::vector<AckedMemoryWrite>& memories() const { return memories_; }
  const std::vector<std::pair<std::string, std::string>>& tasks() const { return tasks_; }
  const std::vector<ClaimRecord>& claims() const { return claims_; }
  const std::vector<std::string>& problems() const { return problems_; }
  long server_errors() const { return server_errors_; }
  long dropped() const { return dropped_; }
  long lock_texts() const { return lock_texts_; }
  long mcp_calls() const { return mcp_calls_; }

 private:
  struct Local {
    LatencyBook book;
    std::vector<AckedMemoryWrite> memories;
    std::vector<std::pair<std::string, std::string>> tasks;  // id, title
    std::vector<ClaimRecord> claims;
  };

  int Port(int t) const { return cfg_.ports[static_cast<size_t>(t) % cfg_.ports.size()]; }

  // Classifies one answer; true when it is one of `expected`.
  bool Check(const std::string& what, const HttpResult& r, std::initializer_list<int> expected) {
    bool lock = LooksLikeLockTrouble(r.body);
    if (lock) ++lock_texts_;
    if (r.status == 0) ++dropped_;
    if (r.status >= 500) ++server_errors_;
    bool ok = !lock && std::find(expected.begin(), expected.end(), r.status) != expected.end();
    if (!ok) {
      std::lock_guard<std::mutex> g(mu_);
      if (problems_.size() < 50) {
        problems_.push_back(what + ": HTTP " + std::to_string(r.status) + " " +
                            r.body.substr(0, 300));
      }
    }
    return ok;
  }

  void WriteMemory(Local& l, int port, const std::string& tag) {
    std::string content = "Load memory " + cfg_.agent_prefix + " " + tag + ": " +
                          kTopics[std::hash<std::string>{}(tag) % kTopics.size()];
    auto t0 = Clock::now();
    auto r = Http(port, "POST", "/api/v1/memories",
                  R"({"content":)" + Str(content) + R"(,"content_type":"learning"})");
    l.book.Add("write", MillisSince(t0));
    if (Check("store memory", r, {201}) && IntIdOf(r.Json()) > 0) {
      l.memories.push_back({IntIdOf(r.Json()), content});
    }
  }

  void WriteTask(Local& l, int port, const std::string& tag) {
    std::string title = "Load task " + cfg_.agent_prefix + " " + tag;
    auto t0 = Clock::now();
    auto r = Http(port, "POST", "/api/v1/phases/" + cfg_.phase_id + "/tasks",
                  R"({"title":)" + Str(title) + R"(,"task_type":"coding","estimated_minutes":1})");
    l.book.Add("write", MillisSince(t0));
    if (Check("create task", r, {201}) && !IdOf(r.Json()).empty()) {
      l.tasks.emplace_back(IdOf(r.Json()), title);
    }
  }

  void MergeLocal(Local& l) {
    book_.Merge(l.book);
    std::lock_guard<std::mutex> g(mu_);
    memories_.insert(memories_.end(), l.memories.begin(), l.memories.end());
    tasks_.insert(tasks_.end(), l.tasks.begin(), l.tasks.end());
    claims_.insert(claims_.end(), l.claims.begin(), l.claims.end());
  }

  void Client(int t) {
    Local l;
    std::mt19937_64 rng(cfg_.seed * 7919 + static_cast<uint64_t>(t));
    const int port = Port(t);
    const std::string agent = cfg_.agent_prefix + "-agent-" + std::to_string(t);
    std::vector<int64_t> known_memories;
    std::vector<std::string> known_tasks;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (const auto& m : memories_) known_memories.push_back(m.id);
      for (const auto& x : tasks_) known_tasks.push_back(x.first);
    }
    McpClient mcp(port);
    for (long n = 0; !stop_ && n < 10000000; ++n) {
      if (pause_) {
        ++paused_;
        while (pause_ && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        --paused_;
      }
      const int pick = static_cast<int>(rng() % 100);
      const std::string topic = kTopics[rng() % kTopics.size()];
      auto t0 = Clock::now();
      if (pick < 30) {  // reads
        HttpResult r;
        int which = static_cast<int>(rng() % 4);
        if (which == 0 && !known_memories.empty()) {
          r = Http(
              port, "GET",
              "/api/v1/memories/" + std::to_string(known_memories[rng() % known_memories.size()]));
        } else if (which == 1 && !known_tasks.empty()) {
          r = Http(port, "GET", "/api/v1/tasks/" + known_tasks[rng() % known_tasks.size()]);
        } else if (which == 2) {
          r = Http(port, "GET", "/api/v1/plans/" + cfg_.plan_id);
        } else {
          r = Http(port, "GET", "/health");
        }
        l.book.Add("read", MillisSince(t0));
        Check("read", r, {200});
      } else if (pick < 50) {  // writes
        const std::string tag = std::to_string(t) + "-" + std::to_string(n);
        if (rng() % 5 < 3) {
          WriteMemory(l, port, tag);
          if (!l.memories.empty()) known_memories.push_back(l.memories.back().id);
        } else {
          WriteTask(l, port, tag);
          if (!l.tasks.empty()) known_tasks.push_back(l.tasks.back().first);
        }
      } else if (pick < 70) {  // searches
        HttpResult r;
        if (rng() % 3) {
          r = Http(port, "POST", "/api/v1/search", R"({"query":)" + Str(topic) + R"(,"limit":10})");
        } else {
          r = Http(port, "POST", "/api/v1/context",
                   R"({"query":)" + Str(topic) + R"(,"token_budget":600})");
        }
        l.book.Add("search", MillisSince(t0));
        Check("search", r, {200});
      } else if (pick < 85) {  // claim, then complete
        auto r = Http(port, "POST", "/api/v1/tasks/claim",
                      R"({"agent":)" + Str(agent) + R"(,"lease_seconds":600,"plan_id":)" +
                          Str(cfg_.plan_id) + "}");
        l.book.Add("claim", MillisSince(t0));
        if (!Check("claim", r, {200, 204}) || r.status == 204) continue;
        std::string id = IdOf(r.Json());
        ClaimRecord c{id, agent, StringField(r.Json(), "lease_expires_at")};
        if (StringField(r.Json(), "lease_owner") != agent || id.empty()) {
          Check("claim owner", HttpResult{-1, {}, r.body}, {});
          continue;
        }
        auto t1 = Clock::now();
        auto d = Http(port, "POST", "/api/v1/tasks/" + id + "/transition",
                      R"({"to":"completed","actor":)" + Str(agent) + "}");
        l.book.Add("transition", MillisSince(t1));
        c.completed = Check("complete " + id, d, {200});
        l.claims.push_back(c);
      } else {  // MCP tool calls
        if (!mcp.ready()) {
          auto init = mcp.Initialize();
          l.book.Add("mcp", MillisSince(t0));
          ++mcp_calls_;
          if (!Check("mcp initialize", init, {200}) || !mcp.ready()) continue;
          t0 = Clock::now();
        }
        int which = static_cast<int>(rng() % 3);
        HttpResult r;
        if (which == 0) {
          r = mcp.Call("devstream_search_memory", json::object{{"query", topic}, {"limit", 5}});
        } else if (which == 1) {
          r = mcp.Call("devstream_list_plans", json::object{});
        } else {
          std::string content = "MCP memory " + cfg_.agent_prefix + " " + std::to_string(t) + "-" +
                                std::to_string(n) + ": " + topic;
          r = mcp.Call("devstream_store_memory",
                       json::object{{"content", content}, {"content_type", "decision"}});
          if (McpToolOk(r)) {
            const json::value answer = r.Json();
            auto sc = answer.at("result").as_object().if_contains("structuredContent");
            if (sc && IntIdOf(*sc) > 0) l.memories.push_back({IntIdOf(*sc), content});
          }
        }
        l.book.Add("mcp", MillisSince(t0));
        ++mcp_calls_;
        if (Check("mcp tools/call", r, {200}) && !McpToolOk(r)) {
          Check("mcp tool error", HttpResult{-1, {}, r.body}, {});
        }
      }
    }
    MergeLocal(l);
  }

  inline static const std::vector<std::string> kTopics = {
      "grpc deadline exceeded when the sidecar restarts",
      "sqlite busy timeout and WAL checkpoints under load",
      "oauth token refresh with a sliding window",
      "HNSW recall versus ef_search on 384 dimension vectors",
      "nginx proxy_buffering off for server sent events",
      "retry with exponential backoff and jitter on 429",
      "makefile tab indentation breaks recipes",
      "lease reaper returns expired claims to pending",
  };

  WorkloadConfig cfg_;
  LatencyBook book_;
  std::mutex mu_;
  std::vector<AckedMemoryWrite> memories_;
  std::vector<std::pair<std::string, std::string>> tasks_;
  std::vector<ClaimRecord> claims_;
  std::vector<std::string> problems_;
  std::atomic<long> server_errors_{0}, dropped_{0}, lock_texts_{0}, mcp_calls_{0};
  std::atomic<bool> stop_{false}, pause_{false};
  std::atomic<int> paused_{0};
  double elapsed_s_ = 0;
};

// Lost writes: every acknowledged memory (with its content) and task is in
// the database; every acknowledged completion shows. Returns the problems.
inline std::vector<std::string> LostWrites(const std::string& db_path, const MixedWorkload& w) {
  std::vector<std::string> out;
  TestDb db(db_path);
  std::map<int64_t, std::string> mem;
  for (auto& r : db.Rows("SELECT id, content FROM semantic_memory")) {
    if (r.size() == 2) mem[std::atoll(r[0].c_str())] = r[1];
  }
  std::map<std::string, std::pair<std::string, std::string>> tasks;
  for (auto& r : db.Rows("SELECT id, title, status FROM micro_tasks")) {
    if (r.size() == 3) tasks[r[0]] = {r[1], r[2]};
  }
  for (const auto& m : w.memories()) {
    auto it = mem.find(m.id);
    if (it == mem.end() || it->second != m.content) {
      if (out.size() < 20) out.push_back("memory " + std::to_string(m.id) + " lost or changed");
    }
  }
  for (const auto& [id, title] : w.tasks()) {
    auto it = tasks.find(id);
    if (it == tasks.end() || it->second.first != title) {
      if (out.size() < 20) out.push_back("task " + id + " lost or changed");
    }
  }
  for (const auto& c : w.claims()) {
    auto it = tasks.find(c.task);
    if (c.completed && (it == tasks.end() || it->second.second != "completed")) {
      if (out.size() < 20) out.push_back("completed task " + c.task + " is not completed");
    }
  }
  return out;
}

}  // namespace ds::rtest
