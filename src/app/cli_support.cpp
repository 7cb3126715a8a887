#include "app/cli_support.h"

#include <iostream>

namespace ds::app {

const char kDbHelp[] =
    "SQLite database path (default: $DEVSTREAM_DATABASE_PATH, else "
    "$XDG_DATA_HOME/devstream/devstream.db, else ~/.local/share/devstream/devstream.db)";

int Fail(const Status& st) {
  std::cerr << "devstream: error: " << st.message() << "\n";
  bool usage = st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kMalformed;
  return usage ? kExitUsage : kExitFailure;
}

Result<Settings> Ctx::LoadSettings(const std::map<std::string, std::string>& flags) const {
  SettingsOptions o;
  if (!config_file.empty()) o.config_file = config_file;
  if (!environment.empty()) o.environment = environment;
  o.flags = flags;
  if (!db_path.empty()) o.flags["database.path"] = db_path;
  return app::LoadSettings(o);
}

Status Ctx::Open() {
  if (services) return Status::Ok();
  DS_ASSIGN_OR_RETURN(Settings settings, LoadSettings());
  DS_ASSIGN_OR_RETURN(services, OpenServices(settings, 4));
  svc = services->tasks.get();
  memories = services->memory.get();
  return Status::Ok();
}

Status Ctx::OpenMemory(bool load_index) {
  DS_RETURN_IF_ERROR(Open());
  return load_index ? memories->LoadIndex() : Status::Ok();
}

void AddDbOption(CLI::App* cmd, Ctx& ctx) {
  cmd->add_option("--db", ctx.db_path, kDbHelp);
}

Action WithService(Ctx& ctx, std::function<int(tasks::TaskService&)> f) {
  return [&ctx, f] {
    Status st = ctx.Open();
    if (!st.ok()) return Fail(st);
    return f(*ctx.svc);
  };
}

Action WithMemory(Ctx& ctx, bool load_index, std::function<int(memory::MemoryService&)> f) {
  return [&ctx, load_index, f] {
    Status st = ctx.OpenMemory(load_index);
    if (!st.ok()) return Fail(st);
    return f(*ctx.memories);
  };
}

Action WithServices(Ctx& ctx, std::function<int(Services&)> f) {
  return [&ctx, f] {
    Status st = ctx.Open();
    if (!st.ok()) return Fail(st);
    return f(*ctx.services);
  };
}

}  // namespace ds::app
