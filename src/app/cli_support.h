// What every CLI command shares: exit codes, the per-invocation context (the
// database and services, opened on first use), mapping a Status to a message
// and exit code, and building request bodies from flags so the CLI runs the
// same decoders (and validation) as REST and MCP.
// Not thread-safe: one CLI invocation runs on one thread.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app/output.h"
#include "app/services.h"
#include "app/settings.h"
#include "core/json.h"
#include "core/status.h"

namespace ds::app {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

class BodyBuilder {
 public:
  BodyBuilder& Str(CLI::Option* opt, const char* key, const std::string& v) {
    if (opt->count()) obj_[key] = v;
    return *this;
  }
  BodyBuilder& Int(CLI::Option* opt, const char* key, int64_t v) {
    if (opt->count()) obj_[key] = v;
    return *this;
  }
  BodyBuilder& Num(CLI::Option* opt, const char* key, double v) {
    if (opt->count()) obj_[key] = v;
    return *this;
  }
  BodyBuilder& Flag(CLI::Option* opt, const char* key, bool v) {
    if (opt->count()) obj_[key] = v;
    return *this;
  }
  BodyBuilder& List(CLI::Option* opt, const char* key, const std::vector<std::string>& v) {
    if (opt->count()) {
      json::array a;
      for (const auto& s : v) a.emplace_back(s);
      obj_[key] = std::move(a);
    }
    return *this;
  }
  json::value Build() const { return obj_; }

 private:
  json::object obj_;
};

// Prints "devstream: error: …"; bad values are usage errors (2), others 1.
int Fail(const Status& st);

// Shared state of one CLI invocation.
struct Ctx {
  std::string db_path;
  std::string config_file;  // --config
  std::string environment;  // --env
  Output out;
  std::unique_ptr<Services> services;
  tasks::TaskService* svc = nullptr;
  memory::MemoryService* memories = nullptr;

  Status Open();
  // Settings from --config/--env, the environment, --db and `flags`.
  Result<Settings> LoadSettings(const std::map<std::string, std::string>& flags = {}) const;
  // The memory service with its index loaded when `load_index` (only the
  // commands that search need it).
  Status OpenMemory(bool load_index);
};

using Action = std::function<int()>;

extern const char kDbHelp[];
void AddDbOption(CLI::App* cmd, Ctx& ctx);

// Wrap an action that needs the services: open the database first.
Action WithService(Ctx& ctx, std::function<int(tasks::TaskService&)> f);
Action WithMemory(Ctx& ctx, bool load_index, std::function<int(memory::MemoryService&)> f);
Action WithServices(Ctx& ctx, std::function<int(Services&)> f);

// A top-level command. RunCli registers every command's name and help line,
// and calls `define` (options, subcommands, callbacks) only for the command
// the command line names: the whole tree takes ~0.6 ms to build, and every
// hook call is a new process.
struct CommandDef {
  const char* name;
  const char* help;
  void (*define)(CLI::App* cmd, Ctx& ctx, Action& action);
};

// `jobs`, `session`, `mcp`, `hook`, `init`, `health`, `backup`, `restore`,
// `config`, `worker` (cli_engine.cpp).
std::vector<CommandDef> EngineCommands();
// `task claim|heartbeat`, added to `task` (cli_engine.cpp).
void DefineTaskClaims(CLI::App* task, Ctx& ctx, Action& action);
// `apikey create|list|revoke` (cli_apikey.cpp).
std::vector<CommandDef> ApiKeyCommands();

}  // namespace ds::app
