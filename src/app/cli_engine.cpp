// CLI commands of the task engine: claiming tasks with leases, the job queue,
// work sessions and the worker process. Thin: flags become the same JSON
// bodies REST decodes.
#include <algorithm>
#include <iostream>

#include <filesystem>
#include "app/cli_support.h"
#include "app/hook_command.h"
#include "app/init_command.h"
#include "app/mcp_command.h"
#include "app/serve.h"
#include "app/store_open.h"
#include "core/clock.h"
#include "core/http_client.h"
#include "engine/job_handlers.h"
#include "engine/worker.h"
#include "memory/codec.h"
#include "store/backup.h"
#include "store/migrations.h"
#include "tasks/codec.h"

namespace ds::app {
namespace {

// "<dir>/<prefix>2026-11-26T07-55-46.db": the time to the second, with '-'
// for ':' so the name is valid everywhere; "...-46-2.db" and so on when a
// backup of the same second exists, so none is ever overwritten.
std::string StampedBackupPath(const std::string& dir, const std::string& prefix) {
  std::string stamp = FormatTimestamp(NowMillis()).substr(0, 19);
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  std::string path = dir + "/" + prefix + stamp + ".db";
  std::error_code ec;
  for (int n = 2; std::filesystem::exists(path, ec); ++n) {
    path = dir + "/" + prefix + stamp + "-" + std::to_string(n) + ".db";
  }
  return path;
}

// GET url: (HTTP status, body); Unavailable when nothing answers.
Result<std::pair<long, std::string>> HttpGet(const std::string& url, long timeout_ms) {
  HttpCall call;
  call.url = url;
  call.timeout_ms = timeout_ms;
  HttpReply r = HttpRequest(call);
  if (!r.error.empty()) return Status::Unavailable(url + " did not answer: " + r.error);
  return std::make_pair(r.status, std::move(r.body));
}

// `task claim` exits with this when no task is ready (scripts loop on it).
constexpr int kExitNothingReady = 3;

const std::vector<std::string> kJobColumns{"id",       "kind",   "state",
                                           "attempts", "run_at", "last_error"};
const std::vector<std::string> kSessionColumns{"id", "status", "agent", "started_at", "ended_at"};

struct EngineFlags {
  std::string id, agent, project, plan, state, kind, cursor, payload, external_id;
  int lease = 300, limit = 50, max_jobs = 1000;
  bool force = false, with_context = false;
};

EngineFlags& Flags() {
  static EngineFlags f;
  return f;
}

void AddClaimCommands(CLI::App* task, Ctx& ctx, Action& action, EngineFlags& f) {
  auto* claim = task->add_subcommand(
      "claim", "Take the best ready task with a lease (exit 3 when none is ready)");
  auto* c_agent = claim->add_option("--agent", f.agent, "Who claims (the lease owner)")->required();
  auto* c_lease = claim->add_option("--lease", f.lease, "Lease in seconds (default 300)");
  auto* c_proj = claim->add_option("--project", f.project, "Project name or id");
  auto* c_plan = claim->add_option("--plan", f.plan, "Only tasks of this plan");
  claim->add_flag("--with-context", f.with_context, "Also the memories most relevant to it");
  AddDbOption(claim, ctx);
  claim->callback([=, &ctx, &action, &f] {
    json::value body = BodyBuilder()
                           .Str(c_agent, "agent", f.agent)
                           .Int(c_lease, "lease_seconds", f.lease)
                           .Str(c_proj, "project", f.project)
                           .Str(c_plan, "plan_id", f.plan)
                           .Build();
    action = WithServices(ctx, [&ctx, &f, body](Services& sv) {
      auto in = tasks::DecodeClaim(body, std::nullopt);
      if (!in.ok()) return Fail(in.status());
      auto t = sv.workflow->Claim(*in);
      if (!t.ok()) return Fail(t.status());
      if (!*t) {
        if (ctx.out.json) {
          std::cout << "null\n";
        } else {
          std::cerr << "devstream: no task is ready\n";
        }
        return kExitNothingReady;
      }
      json::object out = tasks::ToJson(**t);
      if (f.with_context) {
        if (Status st = ctx.OpenMemory(true); !st.ok()) return Fail(st);
        auto hits = sv.workflow->RelevantMemories(**t);
        if (!hits.ok()) return Fail(hits.status());
        json::array context;
        for (const auto& h : *hits) context.push_back(memory::ToJson(h));
        out["context"] = std::move(context);
      }
      ctx.out.Object(out);
      return 0;
    });
  });

  auto* hb = task->add_subcommand("heartbeat", "Extend the lease of a task you hold");
  hb->add_option("id", f.id, "Task id")->required();
  auto* h_agent = hb->add_option("--agent", f.agent, "The lease owner")->required();
  auto* h_lease = hb->add_option("--lease", f.lease, "New lease from now, seconds (default 300)");
  auto* h_force = hb->add_flag("--force", f.force, "Extend another agent's lease (admin)");
  AddDbOption(hb, ctx);
  hb->callback([=, &ctx, &action, &f] {
    json::value body = BodyBuilder()
                           .Str(h_agent, "agent", f.agent)
                           .Int(h_lease, "lease_seconds", f.lease)
                           .Flag(h_force, "force", f.force)
                           .Build();
    action = WithServices(ctx, [&ctx, &f, body](Services& sv) {
      auto in = tasks::DecodeHeartbeat(body, std::nullopt);
      if (!in.ok()) return Fail(in.status());
      auto t = sv.tasks->Heartbeat(f.id, *in);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });
}

void DefineJobs(CLI::App* cmd, Ctx& ctx, Action& action) {
  EngineFlags& f = Flags();
  cmd->require_subcommand(1);

  auto* list = cmd->add_subcommand("list", "List jobs, newest first");
  auto* l_state = list->add_option("--state", f.state, "queued|running|done|failed|dead");
  auto* l_kind = list->add_option("--kind", f.kind, "Job kind");
  list->add_option("--limit", f.limit, "How many (1-500)")->check(CLI::Range(1, 500));
  auto* l_cursor = list->add_option("--cursor", f.cursor, "next_cursor of the previous page");
  AddDbOption(list, ctx);
  list->callback([=, &ctx, &action, &f] {
    action = WithServices(ctx, [=, &ctx, &f](Services& sv) {
      engine::JobFilter jf;
      if (l_state->count()) {
        bool known = false;
        for (auto s : engine::JobStates()) known |= s == f.state;
        if (!known) {
          return Fail(
              Status::InvalidArgument("--state must be one of queued, running, done, "
                                      "failed, dead"));
        }
        jf.state = f.state;
      }
      if (l_kind->count()) jf.kind = f.kind;
      if (l_cursor->count()) jf.cursor = f.cursor;
      jf.limit = f.limit;
      auto page = sv.jobs->List(jf);
      if (!page.ok()) return Fail(page.status());
      json::array items;
      for (const auto& j : page->items) items.push_back(engine::ToJson(j));
      ctx.out.List(items, kJobColumns, OptionalJson(page->next_cursor));
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a job");
  show->add_option("id", f.id, "Job id")->required();
  AddDbOption(show, ctx);
  show->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      auto j = sv.jobs->Get(f.id);
      if (!j.ok()) return Fail(j.status());
      ctx.out.Object(engine::ToJson(*j));
      return 0;
    });
  });

  auto* retry = cmd->add_subcommand("retry", "Queue a dead or failed job again");
  retry->add_option("id", f.id, "Job id")->required();
  AddDbOption(retry, ctx);
  retry->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      auto j = sv.jobs->Retry(f.id);
      if (!j.ok()) return Fail(j.status());
      ctx.out.Object(engine::ToJson(*j));
      return 0;
    });
  });

  auto* enqueue = cmd->add_subcommand("enqueue", "Queue a job (e.g. backup, retention)");
  enqueue->add_option("kind", f.kind, "Job kind")->required();
  enqueue->add_option("--payload", f.payload, "Payload, a JSON object");
  AddDbOption(enqueue, ctx);
  enqueue->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      json::object payload;
      if (!f.payload.empty()) {
        auto parsed = ParseJson(f.payload);
        if (!parsed.ok() || !parsed->is_object()) {
          return Fail(Status::InvalidArgument("--payload must be a JSON object"));
        }
        payload = parsed->as_object();
      }
      const auto& kinds = engine::StandardJobKinds();
      if (std::find(kinds.begin(), kinds.end(), f.kind) == kinds.end()) {
        std::string list;
        for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
        return Fail(Status::InvalidArgument("unknown job kind \"" + f.kind + "\"; one of " + list));
      }
      if (Status st = engine::ValidateJobPayload(f.kind, payload); !st.ok()) return Fail(st);
      auto r = sv.jobs->Enqueue(f.kind, payload);
      if (!r.ok()) return Fail(r.status());
      ctx.out.Object(engine::ToJson(r->job));
      return 0;
    });
  });

  auto* run = cmd->add_subcommand("run-once", "Run every due job in this process, then exit");
  run->add_option("--max", f.max_jobs, "Stop after this many jobs (default 1000)")
      ->check(CLI::Range(1, 1000000));
  AddDbOption(run, ctx);
  run->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      engine::WorkerOptions wo;
      wo.mode = "cli";
      engine::Worker worker(*sv.db, *sv.jobs, wo);
      engine::EngineServices es{*sv.db, *sv.jobs, *sv.workflow, *sv.sessions, sv.settings.engine};
      engine::RegisterJobHandlers(worker, es);
      auto n = worker.RunOnce(f.max_jobs);
      if (!n.ok()) return Fail(n.status());
      ctx.out.Message("ran " + std::to_string(*n) + " job(s)");
      return 0;
    });
  });
}

void DefineSession(CLI::App* cmd, Ctx& ctx, Action& action) {
  EngineFlags& f = Flags();
  cmd->require_subcommand(1);

  auto* start = cmd->add_subcommand("start", "Start a session (or resume one by external id)");
  auto* s_proj = start->add_option("--project", f.project, "Project name or id");
  auto* s_agent = start->add_option("--agent", f.agent, "Who works in it");
  auto* s_ext = start->add_option("--external-id", f.external_id, "The assistant's session id");
  auto* s_plan = start->add_option("--plan", f.plan, "Plan worked on");
  AddDbOption(start, ctx);
  start->callback([=, &ctx, &action, &f] {
    json::value body = BodyBuilder()
                           .Str(s_proj, "project", f.project)
                           .Str(s_agent, "agent", f.agent)
                           .Str(s_ext, "external_id", f.external_id)
                           .Str(s_plan, "plan_id", f.plan)
                           .Build();
    action = WithServices(ctx, [&ctx, body](Services& sv) {
      auto in = engine::DecodeSessionInput(body, std::nullopt);
      if (!in.ok()) return Fail(in.status());
      auto s = sv.sessions->Start(*in);
      if (!s.ok()) return Fail(s.status());
      ctx.out.Object(engine::ToJson(s->first));
      return 0;
    });
  });

  auto* end = cmd->add_subcommand("end", "End a session and queue its summary");
  end->add_option("id", f.id, "Session id (or external id)")->required();
  auto* e_proj = end->add_option("--project", f.project, "Project of an external id");
  AddDbOption(end, ctx);
  end->callback([=, &ctx, &action, &f] {
    action = WithServices(ctx, [=, &ctx, &f](Services& sv) {
      auto s = sv.sessions->End(
          f.id, e_proj->count() ? std::optional<std::string>(f.project) : std::nullopt);
      if (!s.ok()) return Fail(s.status());
      ctx.out.Object(engine::ToJson(*s));
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a session");
  show->add_option("id", f.id, "Session id (or external id)")->required();
  auto* s_proj2 = show->add_option("--project", f.project, "Project of an external id");
  AddDbOption(show, ctx);
  show->callback([=, &ctx, &action, &f] {
    action = WithServices(ctx, [=, &ctx, &f](Services& sv) {
      auto s = sv.sessions->Get(
          f.id, s_proj2->count() ? std::optional<std::string>(f.project) : std::nullopt);
      if (!s.ok()) return Fail(s.status());
      ctx.out.Object(engine::ToJson(*s));
      return 0;
    });
  });

  auto* latest = cmd->add_subcommand("latest", "The last ended session with its summary");
  auto* la_proj = latest->add_option("--project", f.project, "Project name or id");
  AddDbOption(latest, ctx);
  latest->callback([=, &ctx, &action, &f] {
    action = WithServices(ctx, [=, &ctx, &f](Services& sv) {
      auto s = sv.sessions->Latest(la_proj->count() ? std::optional<std::string>(f.project)
                                                    : std::nullopt);
      if (!s.ok()) return Fail(s.status());
      if (ctx.out.json) {
        ctx.out.Object(engine::ToJson(*s));
      } else {
        std::cout << s->summary;
      }
      return 0;
    });
  });
}

void DefineMcp(CLI::App* mcp, Ctx& ctx, Action& action) {
  static McpOptions mcp_opts;
  mcp->add_option("--url", mcp_opts.url,
                  "Relay to the DevStream server at this URL (default: $DEVSTREAM_URL)");
  mcp->add_option("--project", mcp_opts.project,
                  "Default project of the tools (default: $DEVSTREAM_PROJECT, else the git root's "
                  "name)");
  AddDbOption(mcp, ctx);
  mcp->callback([&] {
    action = [&] {
      mcp_opts.db_path = ctx.db_path;
      return RunMcp(mcp_opts);
    };
  });
}

void DefineHook(CLI::App* hook, Ctx& ctx, Action& action) {
  static HookOptions hook_opts;
  hook->add_option("event", hook_opts.event,
                   "SessionStart | UserPromptSubmit | PreToolUse | PostToolUse | "
                   "PostToolUseFailure | Stop | SessionEnd")
      ->required();
  hook->add_option("--url", hook_opts.url,
                   "Relay to the DevStream server at this URL (default: $DEVSTREAM_URL, else "
                   "http://127.0.0.1:8000 unless a database is named)");
  AddDbOption(hook, ctx);
  hook->callback([&] {
    action = [&] {
      hook_opts.db_path = ctx.db_path;
      return RunHook(hook_opts);
    };
  });
}

void DefineInit(CLI::App* init, Ctx& ctx, Action& action) {
  static std::string init_dir;
  init->add_option("--project-dir", init_dir,
                   "The project's root (default: the current directory)");
  init->callback([&] {
    action = [&] {
      auto r = InitProject(init_dir, DevStreamCommand());
      if (!r.ok()) return Fail(r.status());
      json::object out{{"settings", r->settings_path},
                       {"settings_changed", r->settings_changed},
                       {"mcp", r->mcp_path},
                       {"mcp_changed", r->mcp_changed}};
      if (ctx.out.json) {
        ctx.out.Object(out);
      } else {
        std::cout << (r->settings_changed ? "updated " : "unchanged ") << r->settings_path << "\n"
                  << (r->mcp_changed ? "updated " : "unchanged ") << r->mcp_path << "\n";
      }
      return 0;
    };
  });
}

void DefineHealth(CLI::App* health, Ctx& ctx, Action& action) {
  static std::string health_url = "http://127.0.0.1:8000";
  health->add_option("--url", health_url, "The server (default http://127.0.0.1:8000)");
  health->callback([&] {
    action = [&] {
      std::string url = health_url;
      while (!url.empty() && url.back() == '/') url.pop_back();
      auto answer = HttpGet(url + "/health", 5000);
      if (!answer.ok()) {
        std::cerr << "devstream: error: " << answer.status().message() << "\n";
        return kExitFailure;
      }
      auto body = ParseJson(answer->second, 64);
      std::string status = "unhealthy";
      if (body.ok() && body->is_object()) {
        if (const auto* st = body->as_object().if_contains("status"); st && st->is_string()) {
          status = std::string(st->as_string());
        }
      }
      if (ctx.out.json && body.ok()) {
        std::cout << ToJsonString(*body) << "\n";
      } else {
        std::cout << status << " (HTTP " << answer->first << ")\n";
      }
      return status == "healthy" || status == "degraded" ? 0 : kExitFailure;
    };
  });
}

void DefineBackup(CLI::App* backup, Ctx& ctx, Action& action) {
  static std::string backup_dir, backup_file;
  static int prune_keep = -1, prune_days = -1;
  backup->require_subcommand(1);
  auto dir_of = [&](const Settings& s) {
    return backup_dir.empty() ? s.engine.backup_dir : backup_dir;
  };
  auto* b_create = backup->add_subcommand(
      "create", "A consistent online copy (SQLite backup API), checked with integrity_check");
  b_create->add_option("--dir", backup_dir, "Where (default: backup.dir, else <database>.backups)");
  AddDbOption(b_create, ctx);
  b_create->callback([&, dir_of] {
    action = [&, dir_of] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      const std::string& live = settings->database_path;
      if (!std::filesystem::exists(live)) {
        return Fail(Status::NotFound("no database at " + live));
      }
      auto info = OnlineBackup(live, StampedBackupPath(dir_of(*settings), "devstream-"));
      if (!info.ok()) return Fail(info.status());
      ctx.out.Object(
          json::object{{"path", info->path}, {"bytes", info->bytes}, {"verified", true}});
      return 0;
    };
  });
  auto* b_list = backup->add_subcommand("list", "Backups in the backup directory, newest first");
  b_list->add_option("--dir", backup_dir, "Where (default: backup.dir)");
  AddDbOption(b_list, ctx);
  b_list->callback([&, dir_of] {
    action = [&, dir_of] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      json::array items;
      for (const auto& f : ListBackups(dir_of(*settings))) {
        items.push_back(json::object{{"path", f.path},
                                     {"bytes", f.bytes},
                                     {"modified_at", FormatTimestamp(f.modified_unix_ms)}});
      }
      ctx.out.List(items, {"path", "bytes", "modified_at"});
      return 0;
    };
  });
  auto* b_verify = backup->add_subcommand("verify", "integrity_check and schema of a backup file");
  b_verify->add_option("file", backup_file, "The backup")->required();
  b_verify->callback([&] {
    action = [&] {
      auto info = VerifyBackup(backup_file, EmbeddedMigrations().back().version);
      if (!info.ok()) {
        std::cerr << "devstream: error: " << info.status().message() << "\n";
        return kExitFailure;
      }
      ctx.out.Message(backup_file + " is a valid backup (" + std::to_string(info->bytes) +
                      " bytes)");
      return 0;
    };
  });
  auto* b_prune = backup->add_subcommand(
      "prune", "Delete devstream-*.db backups older than --days, keeping the newest --keep");
  b_prune->add_option("--dir", backup_dir, "Where (default: backup.dir)");
  b_prune->add_option("--keep", prune_keep, "Newest kept whatever their age (default backup.keep)")
      ->check(CLI::Range(0, 100000));
  b_prune->add_option("--days", prune_days, "Age in days beyond which (default backup.keep_days)")
      ->check(CLI::Range(0, 36500));
  AddDbOption(b_prune, ctx);
  b_prune->callback([&, dir_of] {
    action = [&, dir_of] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      int keep = prune_keep >= 0 ? prune_keep : settings->engine.backup_keep;
      int days = prune_days >= 0 ? prune_days : settings->engine.backup_keep_days;
      auto gone = PruneBackups(dir_of(*settings), keep, days);
      ctx.out.Message("pruned " + std::to_string(gone.size()) + " backup(s)");
      return 0;
    };
  });
}

void DefineRestore(CLI::App* restore, Ctx& ctx, Action& action) {
  static std::string backup_file;
  restore->add_option("file", backup_file, "The backup to restore")->required();
  AddDbOption(restore, ctx);
  restore->callback([&] {
    action = [&] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      int max_version = EmbeddedMigrations().back().version;
      auto verified = VerifyBackup(backup_file, max_version);
      if (!verified.ok()) {
        std::cerr << "devstream: error: refusing to restore: " << verified.status().message()
                  << "\n";
        return kExitFailure;
      }
      const std::string& live = settings->database_path;
      std::string safety;
      if (std::filesystem::exists(live)) {
        safety = StampedBackupPath(settings->engine.backup_dir, "devstream-pre-restore-");
        auto copy = OnlineBackup(live, safety);
        if (!copy.ok()) {
          std::cerr << "devstream: error: could not back up the current database first: "
                    << copy.status().message() << "\n";
          return kExitFailure;
        }
      }
      if (Status st = RestoreInto(backup_file, live, max_version); !st.ok()) return Fail(st);
      // The HNSW sidecars describe the replaced content.
      std::error_code ec;
      std::filesystem::remove_all(live + ".index", ec);
      ctx.out.Object(json::object{
          {"restored", backup_file},
          {"database", live},
          {"previous_content", safety.empty() ? json::value(nullptr) : json::value(safety)}});
      return 0;
    };
  });
}

void DefineConfig(CLI::App* config, Ctx& ctx, Action& action) {
  config->require_subcommand(1);
  auto* show_cfg = config->add_subcommand(
      "show", "Every setting with its value and source (default, file, environment, flag)");
  AddDbOption(show_cfg, ctx);
  show_cfg->callback([&] {
    action = [&] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      json::object shown = settings->config.Show();
      if (ctx.out.json) {
        ctx.out.Object(json::object{{"environment", settings->environment},
                                    {"config_file", settings->config_file},
                                    {"settings", shown}});
        return 0;
      }
      std::cout << "environment " << settings->environment << " (file "
                << (settings->config_file.empty() ? "none" : settings->config_file) << ")\n";
      for (const auto& spec : SettingsSchema()) {
        const json::object& e = shown.at(spec.key).as_object();
        std::string value = e.at("value").is_string() ? std::string(e.at("value").as_string())
                                                      : ToJsonString(e.at("value"));
        std::cout << spec.key << " = " << value << "  [" << std::string(e.at("source").as_string());
        if (const auto* o = e.if_contains("origin")) {
          std::cout << " " << std::string(o->as_string());
        }
        std::cout << "]\n";
      }
      return 0;
    };
  });
  auto* check_cfg = config->add_subcommand(
      "check", "Validate the settings (and production's start-up rules); exit 1 on a problem");
  AddDbOption(check_cfg, ctx);
  check_cfg->callback([&] {
    action = [&] {
      auto settings = ctx.LoadSettings();
      if (!settings.ok()) return Fail(settings.status());
      auto pending = PendingMigrations(settings->database_path);  // like serve
      if (!pending.ok()) return Fail(pending.status());
      for (const auto& name : settings->config.UnknownEnvironment(ClientEnvironmentVariables())) {
        std::cerr << "devstream: warning: " << name << " is set but no setting reads it\n";
      }
      auto refusals = ProductionRefusals(*settings, *pending);
      for (const auto& r : refusals) std::cerr << "devstream: error: " << r << "\n";
      if (!refusals.empty()) return kExitFailure;
      ctx.out.Message("settings ok (" + settings->environment +
                      (settings->config_file.empty() ? "" : ", " + settings->config_file) + ")");
      return 0;
    };
  });
}

void DefineWorker(CLI::App* worker, Ctx& ctx, Action& action) {
  AddDbOption(worker, ctx);
  worker->callback([&] {
    action = [&] {
      auto settings = ctx.LoadSettings({{"service.mode", "task_engine"}});
      if (!settings.ok()) return Fail(settings.status());
      return RunServe(*settings);
    };
  });
}

}  // namespace

void DefineTaskClaims(CLI::App* task, Ctx& ctx, Action& action) {
  AddClaimCommands(task, ctx, action, Flags());
}

std::vector<CommandDef> EngineCommands() {
  return {
      {"jobs", "The durable job queue", DefineJobs},
      {"session", "Work sessions and their summaries", DefineSession},
      {"mcp", "MCP server on stdio (relays to a running server when one is found)", DefineMcp},
      {"hook", "Claude Code hook: event JSON on stdin, the hook's answer on stdout (always exit 0)",
       DefineHook},
      {"init", "Connect a project to DevStream: Claude Code hooks and the MCP server", DefineInit},
      {"health",
       "Ask a server's /health (container checks): exit 0 healthy or degraded, 1 otherwise",
       DefineHealth},
      {"backup", "Online backups of the database", DefineBackup},
      {"restore",
       "Restore a backup into the database (verified first; the current content is backed up)",
       DefineRestore},
      {"config", "Show or check the effective settings", DefineConfig},
      {"worker", "Run the task engine: durable jobs and the scheduler (service mode task_engine)",
       DefineWorker},
  };
}

}  // namespace ds::app
