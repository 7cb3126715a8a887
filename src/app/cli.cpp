#include "app/cli.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>

#include "app/cli_support.h"
#include "app/hook_command.h"
#include "app/output.h"
#include "app/serve.h"
#include "app/store_open.h"
#include "memory/codec.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "memory/remote_embedder.h"
#include "store/migrations.h"
#include "tasks/codec.h"
#include "tasks/task_service.h"

namespace ds::app {
namespace {

std::vector<std::string> Names(const std::vector<std::string_view>& v) {
  return {v.begin(), v.end()};
}

// `migrate status|verify` inspect; they must not create a database by typo.
Status RequireExistingDatabase(const std::string& path) {
  std::string p = path.empty() ? DefaultDatabasePath() : path;
  if (!std::filesystem::exists(p)) return Status::NotFound("no database at " + p);
  return Status::Ok();
}

template <typename T>
json::array ToArray(const std::vector<T>& v) {
  json::array a;
  for (const auto& x : v) a.push_back(tasks::ToJson(x));
  return a;
}

const std::vector<std::string> kTaskColumns{"id", "status", "priority", "task_type", "title"};
const std::vector<std::string> kPlanColumns{"id", "status", "priority", "title"};
const std::vector<std::string> kPhaseColumns{"id", "status", "sequence_order", "name"};

// ---------------- migrate ----------------

void DefineMigrate(CLI::App* cmd, Ctx& ctx, Action& action) {
  cmd->require_subcommand(1);
  auto* up = cmd->add_subcommand("up", "Apply pending migrations (up to TARGET version)");
  static int target = -1;
  up->add_option("target", target, "Version to migrate up to (default: latest)")
      ->check(CLI::NonNegativeNumber);
  AddDbOption(up, ctx);
  up->callback([&] {
    action = [&] {
      auto db = OpenDatabase(ctx.db_path);
      if (!db.ok()) return Fail(db.status());
      Migrator m(**db);
      auto n = m.Up(target);
      if (!n.ok()) return Fail(n.status());
      ctx.out.Message("applied " + std::to_string(*n) + " migration(s) to " + (*db)->path());
      return 0;
    };
  });
  auto* down = cmd->add_subcommand("down", "Revert the newest N applied migrations (default 1)");
  static int steps = 1;
  down->add_option("n", steps, "How many migrations to revert")->check(CLI::PositiveNumber);
  AddDbOption(down, ctx);
  down->callback([&] {
    action = [&] {
      auto db = OpenDatabase(ctx.db_path);
      if (!db.ok()) return Fail(db.status());
      Migrator m(**db);
      auto n = m.Down(steps);
      if (!n.ok()) return Fail(n.status());
      ctx.out.Message("reverted " + std::to_string(*n) + " migration(s)");
      return 0;
    };
  });
  auto* status = cmd->add_subcommand("status", "List migrations and whether each is applied");
  AddDbOption(status, ctx);
  status->callback([&] {
    action = [&] {
      if (Status st = RequireExistingDatabase(ctx.db_path); !st.ok()) return Fail(st);
      auto db = OpenDatabase(ctx.db_path);
      if (!db.ok()) return Fail(db.status());
      Migrator m(**db);
      auto states = m.States();
      if (!states.ok()) return Fail(states.status());
      json::array items;
      for (const auto& s : *states) {
        items.push_back(
            json::object{{"version", s.version},
                         {"name", s.name},
                         {"state", !s.known        ? "unknown (newer binary)"
                                   : !s.applied    ? "pending"
                                   : s.checksum_ok ? "applied"
                                                   : "applied (checksum mismatch)"},
                         {"applied_at", s.applied_at.empty() ? json::value(nullptr)
                                                             : json::value(s.applied_at)}});
      }
      ctx.out.List(items, {"version", "name", "state", "applied_at"});
      return 0;
    };
  });
  auto* verify = cmd->add_subcommand("verify", "Check applied migrations against this binary");
  AddDbOption(verify, ctx);
  verify->callback([&] {
    action = [&] {
      if (Status st = RequireExistingDatabase(ctx.db_path); !st.ok()) return Fail(st);
      auto db = OpenDatabase(ctx.db_path);
      if (!db.ok()) return Fail(db.status());
      Migrator m(**db);
      Status st = m.Verify();
      if (!st.ok()) return Fail(st);
      auto pending = m.Pending();
      if (!pending.ok()) return Fail(pending.status());
      ctx.out.Message("ok: applied migrations match this binary; " + std::to_string(*pending) +
                      " pending");
      return 0;
    };
  });
}

// ---------------- project ----------------

void DefineProject(CLI::App* cmd, Ctx& ctx, Action& action) {
  cmd->require_subcommand(1);
  auto* create = cmd->add_subcommand("create", "Create a project");
  static std::string name, root;
  create->add_option("name", name, "Project name")->required();
  auto* root_opt = create->add_option("--root", root, "Repository root path");
  AddDbOption(create, ctx);
  create->callback([&, root_opt] {
    action = WithService(ctx, [&, root_opt](tasks::TaskService& svc) {
      auto p = svc.CreateProject(
          name, root_opt->count() ? std::optional<std::string>(root) : std::nullopt);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });
  auto* list = cmd->add_subcommand("list", "List projects");
  AddDbOption(list, ctx);
  list->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto l = svc.ListProjects();
      if (!l.ok()) return Fail(l.status());
      ctx.out.List(ToArray(*l), {"id", "name", "root_path"});
      return 0;
    });
  });
}

// ---------------- plan ----------------

struct PlanFlags {
  std::string id, title, description, outcome, status, project, cursor;
  std::vector<std::string> objectives, tags;
  int priority = 5, limit = 50;
  double hours = 0, actual = 0;
  int64_t version = 0;
};

void DefinePlan(CLI::App* cmd, Ctx& ctx, Action& action) {
  static PlanFlags f;
  cmd->require_subcommand(1);

  auto* create = cmd->add_subcommand("create", "Create a plan");
  auto* o_title = create->add_option("--title", f.title, "Title (1-200 characters)")->required();
  auto* o_desc = create->add_option("--description", f.description, "Description");
  auto* o_obj = create->add_option("--objective", f.objectives, "An objective (repeatable)");
  auto* o_out = create->add_option("--expected-outcome", f.outcome, "Expected outcome");
  auto* o_pri = create->add_option("--priority", f.priority, "Priority 1-10 (default 5)");
  auto* o_hours = create->add_option("--estimated-hours", f.hours, "Estimated hours");
  auto* o_tag = create->add_option("--tag", f.tags, "A tag (repeatable)");
  auto* o_status = create->add_option("--status", f.status, "draft (default) or active");
  auto* o_proj =
      create->add_option("--project", f.project, "Project name or id (default: default)");
  AddDbOption(create, ctx);
  create->callback([=, &ctx, &action] {
    json::value body = BodyBuilder()
                           .Str(o_title, "title", f.title)
                           .Str(o_desc, "description", f.description)
                           .List(o_obj, "objectives", f.objectives)
                           .Str(o_out, "expected_outcome", f.outcome)
                           .Int(o_pri, "priority", f.priority)
                           .Num(o_hours, "estimated_hours", f.hours)
                           .List(o_tag, "tags", f.tags)
                           .Str(o_status, "status", f.status)
                           .Str(o_proj, "project", f.project)
                           .Build();
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto in = tasks::DecodePlanInput(body);
      if (!in.ok()) return Fail(in.status());
      auto p = svc.CreatePlan(*in);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });

  auto* list = cmd->add_subcommand("list", "List plans of a project");
  auto* l_proj = list->add_option("--project", f.project, "Project name or id");
  auto* l_status = list->add_option("--status", f.status, "Filter by status")
                       ->check(CLI::IsMember(Names(tasks::PlanStatuses())));
  list->add_option("--limit", f.limit, "Page size (1-500)")->check(CLI::Range(1, 500));
  auto* l_cursor = list->add_option("--cursor", f.cursor, "Cursor from a previous page");
  AddDbOption(list, ctx);
  list->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      tasks::PlanFilter pf;
      if (l_proj->count()) pf.project = f.project;
      if (l_status->count()) pf.status = f.status;
      if (l_cursor->count()) pf.cursor = f.cursor;
      pf.limit = f.limit;
      auto page = svc.ListPlans(pf);
      if (!page.ok()) return Fail(page.status());
      ctx.out.List(ToArray(page->items), kPlanColumns,
                   page->next_cursor ? json::value(*page->next_cursor) : json::value(nullptr));
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a plan with its progress");
  show->add_option("id", f.id, "Plan id")->required();
  AddDbOption(show, ctx);
  show->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto p = svc.GetPlan(f.id);
      if (!p.ok()) return Fail(p.status());
      auto progress = svc.PlanProgress(f.id);
      if (!progress.ok()) return Fail(progress.status());
      json::object o = tasks::ToJson(*p);
      o["progress"] = tasks::ToJson(*progress);
      ctx.out.Object(o);
      return 0;
    });
  });

  auto* update = cmd->add_subcommand("update", "Update a plan (only the given fields)");
  update->add_option("id", f.id, "Plan id")->required();
  auto* u_title = update->add_option("--title", f.title, "Title");
  auto* u_desc = update->add_option("--description", f.description, "Description");
  auto* u_obj = update->add_option("--objective", f.objectives, "Objectives (replaces all)");
  auto* u_out = update->add_option("--expected-outcome", f.outcome, "Expected outcome");
  auto* u_pri = update->add_option("--priority", f.priority, "Priority 1-10");
  auto* u_hours = update->add_option("--estimated-hours", f.hours, "Estimated hours");
  auto* u_actual = update->add_option("--actual-hours", f.actual, "Actual hours");
  auto* u_tag = update->add_option("--tag", f.tags, "Tags (replaces all)");
  auto* u_status = update->add_option(
      "--status", f.status, "active | archived | cancelled (plans complete by themselves)");
  auto* u_version = update->add_option("--version", f.version, "Expected current version");
  AddDbOption(update, ctx);
  update->callback([=, &ctx, &action] {
    json::value body = BodyBuilder()
                           .Str(u_title, "title", f.title)
                           .Str(u_desc, "description", f.description)
                           .List(u_obj, "objectives", f.objectives)
                           .Str(u_out, "expected_outcome", f.outcome)
                           .Int(u_pri, "priority", f.priority)
                           .Num(u_hours, "estimated_hours", f.hours)
                           .Num(u_actual, "actual_hours", f.actual)
                           .List(u_tag, "tags", f.tags)
                           .Str(u_status, "status", f.status)
                           .Int(u_version, "version", f.version)
                           .Build();
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto patch = tasks::DecodePlanPatch(body);
      if (!patch.ok()) return Fail(patch.status());
      auto p = svc.UpdatePlan(f.id, *patch);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });

  auto* del = cmd->add_subcommand("delete", "Delete a plan with its phases and tasks");
  del->add_option("id", f.id, "Plan id")->required();
  auto* d_version = del->add_option("--version", f.version, "Expected current version");
  AddDbOption(del, ctx);
  del->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      Status st = svc.DeletePlan(
          f.id, d_version->count() ? std::optional<int64_t>(f.version) : std::nullopt);
      if (!st.ok()) return Fail(st);
      ctx.out.Message("deleted " + f.id);
      return 0;
    });
  });

  auto* graph = cmd->add_subcommand("graph", "Order, parallel levels, critical path, progress");
  graph->add_option("id", f.id, "Plan id")->required();
  AddDbOption(graph, ctx);
  graph->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto g = svc.Graph(f.id);
      if (!g.ok()) return Fail(g.status());
      if (ctx.out.json) {
        ctx.out.Object(tasks::ToJson(*g));
        return 0;
      }
      std::map<std::string, std::string> titles;
      for (const auto& t : g->tasks) titles[t.id] = t.title;
      std::cout << "order:\n";
      for (size_t i = 0; i < g->order.size(); ++i) {
        std::cout << "  " << i + 1 << ". " << g->order[i] << "  " << titles[g->order[i]] << "\n";
      }
      std::cout << "levels (tasks in one level can run in parallel):\n";
      for (size_t i = 0; i < g->levels.size(); ++i) {
        std::cout << "  " << i << ":";
        for (const auto& id : g->levels[i]) std::cout << " " << id;
        std::cout << "\n";
      }
      std::cout << "critical path (" << g->critical_path_minutes << " min):";
      for (const auto& id : g->critical_path) std::cout << " " << id;
      std::cout << "\nprogress: " << g->progress.completed + g->progress.skipped << "/"
                << g->progress.total << " (" << g->progress.percent << "%)\n";
      return 0;
    });
  });
}

// ---------------- phase ----------------

struct PhaseFlags {
  std::string id, plan, name, description, criteria;
  std::vector<std::string> depends_on;
  int64_t order = 0, minutes = 0, version = 0;
};

void DefinePhase(CLI::App* cmd, Ctx& ctx, Action& action) {
  static PhaseFlags f;
  cmd->require_subcommand(1);

  auto* create = cmd->add_subcommand("create", "Add a phase to a plan");
  create->add_option("plan", f.plan, "Plan id")->required();
  auto* o_name = create->add_option("--name", f.name, "Name (1-200 characters)")->required();
  auto* o_desc = create->add_option("--description", f.description, "Description");
  auto* o_order = create->add_option("--order", f.order, "Display order (default: last)");
  auto* o_min = create->add_option("--estimated-minutes", f.minutes, "Estimated minutes");
  auto* o_crit = create->add_option("--completion-criteria", f.criteria, "Completion criteria");
  auto* o_dep = create->add_option("--depends-on", f.depends_on, "Phase id (repeatable)");
  AddDbOption(create, ctx);
  create->callback([=, &ctx, &action] {
    json::value body = BodyBuilder()
                           .Str(o_name, "name", f.name)
                           .Str(o_desc, "description", f.description)
                           .Int(o_order, "sequence_order", f.order)
                           .Int(o_min, "estimated_minutes", f.minutes)
                           .Str(o_crit, "completion_criteria", f.criteria)
                           .List(o_dep, "depends_on", f.depends_on)
                           .Build();
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto in = tasks::DecodePhaseInput(body);
      if (!in.ok()) return Fail(in.status());
      auto p = svc.CreatePhase(f.plan, *in);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });

  auto* list = cmd->add_subcommand("list", "List a plan's phases");
  list->add_option("plan", f.plan, "Plan id")->required();
  AddDbOption(list, ctx);
  list->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto l = svc.ListPhases(f.plan);
      if (!l.ok()) return Fail(l.status());
      ctx.out.List(ToArray(*l), kPhaseColumns);
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a phase");
  show->add_option("id", f.id, "Phase id")->required();
  AddDbOption(show, ctx);
  show->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto p = svc.GetPhase(f.id);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });

  auto* update = cmd->add_subcommand("update", "Update a phase (only the given fields)");
  update->add_option("id", f.id, "Phase id")->required();
  auto* u_name = update->add_option("--name", f.name, "Name");
  auto* u_desc = update->add_option("--description", f.description, "Description");
  auto* u_order = update->add_option("--order", f.order, "Display order");
  auto* u_min = update->add_option("--estimated-minutes", f.minutes, "Estimated minutes");
  auto* u_crit = update->add_option("--completion-criteria", f.criteria, "Completion criteria");
  auto* u_dep = update->add_option("--depends-on", f.depends_on, "Phase ids (replaces all)");
  auto* u_version = update->add_option("--version", f.version, "Expected current version");
  AddDbOption(update, ctx);
  update->callback([=, &ctx, &action] {
    json::value body = BodyBuilder()
                           .Str(u_name, "name", f.name)
                           .Str(u_desc, "description", f.description)
                           .Int(u_order, "sequence_order", f.order)
                           .Int(u_min, "estimated_minutes", f.minutes)
                           .Str(u_crit, "completion_criteria", f.criteria)
                           .List(u_dep, "depends_on", f.depends_on)
                           .Int(u_version, "version", f.version)
                           .Build();
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto patch = tasks::DecodePhasePatch(body);
      if (!patch.ok()) return Fail(patch.status());
      auto p = svc.UpdatePhase(f.id, *patch);
      if (!p.ok()) return Fail(p.status());
      ctx.out.Object(tasks::ToJson(*p));
      return 0;
    });
  });

  auto* del = cmd->add_subcommand("delete", "Delete a phase and its tasks");
  del->add_option("id", f.id, "Phase id")->required();
  auto* d_version = del->add_option("--version", f.version, "Expected current version");
  AddDbOption(del, ctx);
  del->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      Status st = svc.DeletePhase(
          f.id, d_version->count() ? std::optional<int64_t>(f.version) : std::nullopt);
      if (!st.ok()) return Fail(st);
      ctx.out.Message("deleted " + f.id);
      return 0;
    });
  });
}

// ---------------- task ----------------

struct TaskFlags {
  std::string id, phase, title, description, type, agent, notes, to, note, actor, dep;
  std::string status, plan, project, cursor;
  std::vector<std::string> depends_on, inputs, outputs, criteria;
  int priority = 5, max_minutes = 10, estimate = 10, retries = 3, limit = 50, priority_min = 1;
  int64_t tokens = 0, version = 0;
  bool soft = false, force = false, with_context = false;
};

// "tsk_…" or "tsk_…:soft" -> {"id", "kind"}
json::array DependencyList(const std::vector<std::string>& specs) {
  json::array a;
  for (const auto& s : specs) {
    auto colon = s.find(':');
    if (colon == std::string::npos) {
      a.emplace_back(s);
    } else {
      a.push_back(json::object{{"id", s.substr(0, colon)}, {"kind", s.substr(colon + 1)}});
    }
  }
  return a;
}

void DefineTask(CLI::App* cmd, Ctx& ctx, Action& action) {
  static TaskFlags f;
  cmd->require_subcommand(1);

  auto* create = cmd->add_subcommand("create", "Add a micro-task to a phase");
  create->add_option("phase", f.phase, "Phase id")->required();
  auto* o_title = create->add_option("--title", f.title, "Title (1-200 characters)")->required();
  auto* o_desc = create->add_option("--description", f.description, "Description");
  auto* o_type =
      create->add_option("--type", f.type, "analysis|coding|documentation|testing|review|research");
  auto* o_pri = create->add_option("--priority", f.priority, "Priority 1-10 (default 5)");
  auto* o_max = create->add_option("--max-minutes", f.max_minutes, "Max duration 1-10 minutes");
  auto* o_est = create->add_option("--estimate", f.estimate, "Estimated minutes 1-10");
  auto* o_agent = create->add_option("--agent", f.agent, "Assigned agent");
  auto* o_notes = create->add_option("--notes", f.notes, "Notes");
  auto* o_retries = create->add_option("--max-retries", f.retries, "Max retries 0-100");
  auto* o_in = create->add_option("--input-file", f.inputs, "Input file (repeatable)");
  auto* o_out = create->add_option("--output-file", f.outputs, "Output file (repeatable)");
  auto* o_crit = create->add_option("--criterion", f.criteria, "Acceptance criterion (repeatable)");
  auto* o_dep = create->add_option("--depends-on", f.depends_on,
                                   "Task id, or id:soft for a soft edge (repeatable)");
  AddDbOption(create, ctx);
  create->callback([=, &ctx, &action] {
    json::object body = BodyBuilder()
                            .Str(o_title, "title", f.title)
                            .Str(o_desc, "description", f.description)
                            .Str(o_type, "task_type", f.type)
                            .Int(o_pri, "priority", f.priority)
                            .Int(o_max, "max_duration_minutes", f.max_minutes)
                            .Int(o_est, "estimated_minutes", f.estimate)
                            .Str(o_agent, "assigned_agent", f.agent)
                            .Str(o_notes, "notes", f.notes)
                            .Int(o_retries, "max_retries", f.retries)
                            .List(o_in, "input_files", f.inputs)
                            .List(o_out, "output_files", f.outputs)
                            .List(o_crit, "acceptance_criteria", f.criteria)
                            .Build()
                            .as_object();
    if (o_dep->count()) body["depends_on"] = DependencyList(f.depends_on);
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto in = tasks::DecodeTaskInput(body);
      if (!in.ok()) return Fail(in.status());
      auto t = svc.CreateTask(f.phase, *in);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });

  auto* list = cmd->add_subcommand("list", "List tasks (filters combine)");
  auto* l_proj = list->add_option("--project", f.project, "Project name or id");
  auto* l_status = list->add_option("--status", f.status, "Filter by status")
                       ->check(CLI::IsMember(Names(tasks::TaskStatuses())));
  auto* l_plan = list->add_option("--plan", f.plan, "Filter by plan id");
  auto* l_phase = list->add_option("--phase", f.phase, "Filter by phase id");
  auto* l_type = list->add_option("--type", f.type, "Filter by task type")
                     ->check(CLI::IsMember(Names(tasks::TaskTypes())));
  auto* l_agent = list->add_option("--agent", f.agent, "Filter by assigned agent");
  auto* l_pri = list->add_option("--priority-min", f.priority_min, "Minimum priority")
                    ->check(CLI::Range(1, 10));
  list->add_option("--limit", f.limit, "Page size (1-500)")->check(CLI::Range(1, 500));
  auto* l_cursor = list->add_option("--cursor", f.cursor, "Cursor from a previous page");
  AddDbOption(list, ctx);
  list->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      tasks::TaskFilter tf;
      if (l_proj->count()) tf.project = f.project;
      if (l_status->count()) tf.status = f.status;
      if (l_plan->count()) tf.plan_id = f.plan;
      if (l_phase->count()) tf.phase_id = f.phase;
      if (l_type->count()) tf.task_type = f.type;
      if (l_agent->count()) tf.assigned_agent = f.agent;
      if (l_pri->count()) tf.priority_min = f.priority_min;
      if (l_cursor->count()) tf.cursor = f.cursor;
      tf.limit = f.limit;
      auto page = svc.ListTasks(tf);
      if (!page.ok()) return Fail(page.status());
      ctx.out.List(ToArray(page->items), kTaskColumns,
                   page->next_cursor ? json::value(*page->next_cursor) : json::value(nullptr));
      return 0;
    });
  });

  auto* ready = cmd->add_subcommand("ready", "Tasks whose dependencies are done, best first");
  auto* r_proj = ready->add_option("--project", f.project, "Project name or id");
  auto* r_plan = ready->add_option("--plan", f.plan, "Plan id");
  auto* r_limit =
      ready->add_option("--limit", f.limit, "How many (1-500)")->check(CLI::Range(1, 500));
  AddDbOption(ready, ctx);
  ready->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      tasks::ReadyFilter rf;
      if (r_proj->count()) rf.project = f.project;
      if (r_plan->count()) rf.plan_id = f.plan;
      if (r_limit->count()) rf.limit = f.limit;
      auto l = svc.Ready(rf);
      if (!l.ok()) return Fail(l.status());
      ctx.out.List(ToArray(*l), kTaskColumns);
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a task");
  show->add_option("id", f.id, "Task id")->required();
  show->add_flag("--with-context", f.with_context, "Also the memories most relevant to it");
  AddDbOption(show, ctx);
  show->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      auto t = sv.tasks->GetTask(f.id);
      if (!t.ok()) return Fail(t.status());
      json::object out = tasks::ToJson(*t);
      if (f.with_context) {
        if (Status st = ctx.OpenMemory(true); !st.ok()) return Fail(st);
        auto hits = sv.workflow->RelevantMemories(*t);
        if (!hits.ok()) return Fail(hits.status());
        json::array context;
        for (const auto& h : *hits) context.push_back(memory::ToJson(h));
        out["context"] = std::move(context);
      }
      ctx.out.Object(out);
      return 0;
    });
  });

  auto* events = cmd->add_subcommand("events", "A task's audit trail");
  events->add_option("id", f.id, "Task id")->required();
  AddDbOption(events, ctx);
  events->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto l = svc.Events(f.id);
      if (!l.ok()) return Fail(l.status());
      ctx.out.List(ToArray(*l), {"at", "from", "to", "actor", "note"});
      return 0;
    });
  });

  auto* update = cmd->add_subcommand("update", "Update a task (only the given fields)");
  update->add_option("id", f.id, "Task id")->required();
  auto* u_title = update->add_option("--title", f.title, "Title");
  auto* u_desc = update->add_option("--description", f.description, "Description");
  auto* u_type = update->add_option("--type", f.type, "Task type");
  auto* u_pri = update->add_option("--priority", f.priority, "Priority 1-10");
  auto* u_max = update->add_option("--max-minutes", f.max_minutes, "Max duration 1-10 minutes");
  auto* u_est = update->add_option("--estimate", f.estimate, "Estimated minutes 1-10");
  auto* u_agent = update->add_option("--agent", f.agent, "Assigned agent");
  auto* u_notes = update->add_option("--notes", f.notes, "Notes");
  auto* u_retries = update->add_option("--max-retries", f.retries, "Max retries 0-100");
  auto* u_in = update->add_option("--input-file", f.inputs, "Input files (replaces all)");
  auto* u_out = update->add_option("--output-file", f.outputs, "Output files (replaces all)");
  auto* u_crit = update->add_option("--criterion", f.criteria, "Criteria (replaces all)");
  auto* u_version = update->add_option("--version", f.version, "Expected current version");
  AddDbOption(update, ctx);
  update->callback([=, &ctx, &action] {
    json::value body = BodyBuilder()
                           .Str(u_title, "title", f.title)
                           .Str(u_desc, "description", f.description)
                           .Str(u_type, "task_type", f.type)
                           .Int(u_pri, "priority", f.priority)
                           .Int(u_max, "max_duration_minutes", f.max_minutes)
                           .Int(u_est, "estimated_minutes", f.estimate)
                           .Str(u_agent, "assigned_agent", f.agent)
                           .Str(u_notes, "notes", f.notes)
                           .Int(u_retries, "max_retries", f.retries)
                           .List(u_in, "input_files", f.inputs)
                           .List(u_out, "output_files", f.outputs)
                           .List(u_crit, "acceptance_criteria", f.criteria)
                           .Int(u_version, "version", f.version)
                           .Build();
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto patch = tasks::DecodeTaskPatch(body);
      if (!patch.ok()) return Fail(patch.status());
      auto t = svc.UpdateTask(f.id, *patch);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });

  auto* transition = cmd->add_subcommand("transition", "Move a task to another status");
  transition->add_option("id", f.id, "Task id")->required();
  auto* t_to = transition->add_option("to", f.to, "active|completed|failed|blocked|pending|skipped")
                   ->required();
  auto* t_note = transition->add_option("--note", f.note, "Note for the audit trail");
  auto* t_actor = transition->add_option("--actor", f.actor, "Who acts (default: cli)");
  auto* t_tokens = transition->add_option("--context-tokens", f.tokens, "Context tokens used");
  auto* t_version = transition->add_option("--version", f.version, "Expected current version");
  auto* t_force =
      transition->add_flag("--force", f.force, "Act on a task leased to another agent (admin)");
  AddDbOption(transition, ctx);
  transition->callback([=, &ctx, &action] {
    json::object body = BodyBuilder()
                            .Str(t_to, "to", f.to)
                            .Str(t_note, "note", f.note)
                            .Str(t_actor, "actor", f.actor)
                            .Int(t_tokens, "context_tokens_used", f.tokens)
                            .Int(t_version, "version", f.version)
                            .Flag(t_force, "force", f.force)
                            .Build()
                            .as_object();
    action = WithServices(ctx, [&ctx, body](Services& sv) {
      auto in = tasks::DecodeTransition(body);
      if (!in.ok()) return Fail(in.status());
      in->channel = "cli";
      auto t = sv.workflow->Transition(f.id, *in);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });

  auto* depend = cmd->add_subcommand("depend", "Make a task depend on another");
  depend->add_option("id", f.id, "The dependent task")->required();
  depend->add_option("depends_on", f.dep, "The task it waits for")->required();
  depend->add_flag("--soft", f.soft, "Soft edge: orders the ready list but never blocks");
  AddDbOption(depend, ctx);
  depend->callback([&] {
    json::value body = json::object{{"depends_on", f.dep}, {"kind", f.soft ? "soft" : "blocking"}};
    action = WithService(ctx, [&ctx, body](tasks::TaskService& svc) {
      auto dep = tasks::DecodeDependency(body);
      if (!dep.ok()) return Fail(dep.status());
      auto t = svc.AddDependency(f.id, *dep);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });

  auto* undepend = cmd->add_subcommand("undepend", "Remove a dependency");
  undepend->add_option("id", f.id, "The dependent task")->required();
  undepend->add_option("depends_on", f.dep, "The task it waited for")->required();
  AddDbOption(undepend, ctx);
  undepend->callback([&] {
    action = WithService(ctx, [&](tasks::TaskService& svc) {
      auto t = svc.RemoveDependency(f.id, f.dep);
      if (!t.ok()) return Fail(t.status());
      ctx.out.Object(tasks::ToJson(*t));
      return 0;
    });
  });

  auto* del = cmd->add_subcommand("delete", "Delete a task");
  del->add_option("id", f.id, "Task id")->required();
  auto* d_version = del->add_option("--version", f.version, "Expected current version");
  AddDbOption(del, ctx);
  del->callback([=, &ctx, &action] {
    action = WithService(ctx, [=, &ctx](tasks::TaskService& svc) {
      Status st = svc.DeleteTask(
          f.id, d_version->count() ? std::optional<int64_t>(f.version) : std::nullopt);
      if (!st.ok()) return Fail(st);
      ctx.out.Message("deleted " + f.id);
      return 0;
    });
  });
  DefineTaskClaims(cmd, ctx, action);
}

// ---------------- memory ----------------

struct MemoryFlags {
  std::string content, file, type, format, path, project, task, plan, query, mode, cursor;
  std::vector<std::string> keywords, types;
  double relevance = 0.5;
  bool pinned = false, include_archived = false, diversity = false;
  int limit = 10, budget = 2000;
  int64_t id = 0;
};

void DefineMemory(CLI::App* cmd, Ctx& ctx, Action& action) {
  static MemoryFlags f;
  cmd->require_subcommand(1);

  auto* store = cmd->add_subcommand("store", "Store a memory (text, --file, or - for stdin)");
  auto* o_content =
      store->add_option("content", f.content, "The text to remember ('-' reads stdin)");
  auto* o_file = store->add_option("--file", f.file, "Read the content from this file");
  auto* o_type = store
                     ->add_option("--type", f.type,
                                  "code|documentation|context|output|error|decision|learning")
                     ->required();
  auto* o_format = store->add_option("--format", f.format, "text, markdown, python, diff, ...");
  auto* o_path =
      store->add_option("--path", f.path, "The source file it describes (supersedes older)");
  auto* o_kw = store->add_option("--keyword", f.keywords, "A keyword (repeatable)");
  auto* o_proj = store->add_option("--project", f.project, "Project name or id");
  auto* o_task = store->add_option("--task", f.task, "Link to a task id");
  auto* o_plan = store->add_option("--plan", f.plan, "Link to a plan id");
  auto* o_rel = store->add_option("--relevance", f.relevance, "Importance 0..1 (default 0.5)");
  auto* o_pin = store->add_flag("--pinned", f.pinned, "Pin it");
  AddDbOption(store, ctx);
  store->callback([=, &ctx, &action] {
    std::string content = f.content;
    if (o_file->count()) {
      std::ifstream in(f.file, std::ios::binary);
      if (!in) {
        action = [file = f.file] {
          std::cerr << "devstream: error: cannot read " << file << "\n";
          return kExitUsage;
        };
        return;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      content = ss.str();
    } else if (!o_content->count() || content == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      content = ss.str();
    }
    json::object body = BodyBuilder()
                            .Str(o_type, "content_type", f.type)
                            .Str(o_format, "content_format", f.format)
                            .Str(o_path, "file_path", f.path)
                            .List(o_kw, "keywords", f.keywords)
                            .Str(o_proj, "project", f.project)
                            .Str(o_task, "task_id", f.task)
                            .Str(o_plan, "plan_id", f.plan)
                            .Num(o_rel, "relevance_score", f.relevance)
                            .Build()
                            .as_object();
    body["content"] = content;
    if (o_pin->count()) body["pinned"] = true;
    body["source"] = "cli";
    action = WithMemory(ctx, false, [&ctx, body](memory::MemoryService& svc) {
      auto in = memory::DecodeMemoryInput(body);
      if (!in.ok()) return Fail(in.status());
      auto r = svc.Store(*in);
      if (!r.ok()) return Fail(r.status());
      if (ctx.out.json) {
        ctx.out.Object(memory::ToJson(*r));
      } else {
        std::cout << (r->deduplicated ? "already stored as memory " : "stored memory ")
                  << r->memory.id;
        if (r->redactions) std::cout << " (" << r->redactions << " secret(s) redacted)";
        for (size_t i = 0; i < r->superseded.size(); ++i) {
          std::cout << (i == 0 ? " (supersedes " : ", ") << r->superseded[i];
        }
        if (!r->superseded.empty()) std::cout << ")";
        std::cout << "\n";
      }
      return 0;
    });
  });

  auto* search = cmd->add_subcommand("search", "Hybrid search (keyword + vector, RRF)");
  search->add_option("query", f.query, "What to look for")->required();
  auto* s_limit = search->add_option("--limit", f.limit, "Results (1-100, default 10)");
  auto* s_mode = search->add_option("--mode", f.mode, "hybrid (default), vector or keyword");
  auto* s_type = search->add_option("--type", f.types, "Content type filter (repeatable)");
  auto* s_proj = search->add_option("--project", f.project, "Project name or id");
  auto* s_arch = search->add_flag("--include-archived", f.include_archived,
                                  "Also archived and superseded memories");
  AddDbOption(search, ctx);
  search->callback([=, &ctx, &action] {
    json::object body = BodyBuilder()
                            .Str(s_mode, "mode", f.mode)
                            .List(s_type, "content_types", f.types)
                            .Str(s_proj, "project", f.project)
                            .Int(s_limit, "limit", f.limit)
                            .Build()
                            .as_object();
    body["query"] = f.query;
    if (s_arch->count()) body["include_archived"] = true;
    action = WithMemory(ctx, true, [&ctx, body](memory::MemoryService& svc) {
      auto q = memory::DecodeSearchQuery(body);
      if (!q.ok()) return Fail(q.status());
      q->record_access = false;  // a person browsing is not an assistant using memory
      auto r = svc.Search(*q);
      if (!r.ok()) return Fail(r.status());
      if (ctx.out.json) {
        ctx.out.Object(memory::ToJson(*r));
        return 0;
      }
      if (r->degraded) std::cout << "(degraded: keyword only: " << r->degraded_reason << ")\n";
      if (r->hits.empty()) std::cout << "(no matches)\n";
      for (const auto& h : r->hits) {
        std::string line = h.memory.content.substr(0, 100);
        for (auto& ch : line) {
          if (ch == '\n') ch = ' ';
        }
        std::printf("%-6lld %-13s %.4f  %s\n", static_cast<long long>(h.memory.id),
                    h.memory.content_type.c_str(), h.score, line.c_str());
      }
      return 0;
    });
  });

  auto* context =
      cmd->add_subcommand("context", "Assemble context for a query within a token budget");
  context->add_option("query", f.query, "What the context is for")->required();
  auto* c_budget = context->add_option("--budget", f.budget, "Token budget (default 2000)");
  auto* c_proj = context->add_option("--project", f.project, "Project name or id");
  auto* c_div = context->add_flag("--diversity", f.diversity, "Interleave content types");
  AddDbOption(context, ctx);
  context->callback([=, &ctx, &action] {
    json::object body = BodyBuilder()
                            .Int(c_budget, "token_budget", f.budget)
                            .Str(c_proj, "project", f.project)
                            .Build()
                            .as_object();
    body["query"] = f.query;
    if (c_div->count()) body["diversity"] = true;
    action = WithMemory(ctx, true, [&ctx, body](memory::MemoryService& svc) {
      auto q = memory::DecodeContextQuery(body);
      if (!q.ok()) return Fail(q.status());
      auto r = svc.Context(*q);
      if (!r.ok()) return Fail(r.status());
      if (ctx.out.json) {
        ctx.out.Object(memory::ToJson(*r));
      } else {
        std::cout << r->context;
      }
      return 0;
    });
  });

  auto* list = cmd->add_subcommand("list", "List memories, newest first");
  auto* l_proj = list->add_option("--project", f.project, "Project name or id");
  auto* l_type = list->add_option("--type", f.types, "Content type filter (repeatable)");
  auto* l_limit =
      list->add_option("--limit", f.limit, "Page size (1-500)")->check(CLI::Range(1, 500));
  auto* l_cursor = list->add_option("--cursor", f.cursor, "Cursor from a previous page");
  auto* l_arch = list->add_flag("--include-archived", f.include_archived, "Include archived");
  AddDbOption(list, ctx);
  list->callback([=, &ctx, &action] {
    action = WithMemory(ctx, false, [=, &ctx](memory::MemoryService& svc) {
      memory::MemoryFilter mf;
      if (l_proj->count()) mf.project = f.project;
      if (l_type->count()) mf.content_types = f.types;
      for (const auto& t : mf.content_types) {
        if (memory::ContentTypeIndex(t) < 0) {
          return Fail(Status::InvalidArgument("unknown content type \"" + t + "\""));
        }
      }
      if (l_limit->count()) mf.limit = f.limit;
      if (l_cursor->count()) mf.cursor = f.cursor;
      mf.include_archived = l_arch->count() > 0;
      auto page = svc.List(mf);
      if (!page.ok()) return Fail(page.status());
      json::array items;
      for (const auto& m : page->items) {
        json::object o = memory::ToJson(m);
        std::string preview = m.content.substr(0, 60);
        for (auto& ch : preview) {
          if (ch == '\n') ch = ' ';
        }
        if (!ctx.out.json) o["content"] = preview;
        items.push_back(std::move(o));
      }
      ctx.out.List(items, {"id", "content_type", "created_at", "content"},
                   page->next_cursor ? json::value(*page->next_cursor) : json::value(nullptr));
      return 0;
    });
  });

  auto* show = cmd->add_subcommand("show", "Show a memory");
  show->add_option("id", f.id, "Memory id")->required()->check(CLI::PositiveNumber);
  AddDbOption(show, ctx);
  show->callback([&] {
    action = WithMemory(ctx, false, [&](memory::MemoryService& svc) {
      auto m = svc.Get(f.id);
      if (!m.ok()) return Fail(m.status());
      ctx.out.Object(memory::ToJson(*m));
      return 0;
    });
  });

  auto* forget = cmd->add_subcommand("forget", "Archive a memory (kept, but out of search)");
  forget->add_option("id", f.id, "Memory id")->required()->check(CLI::PositiveNumber);
  AddDbOption(forget, ctx);
  forget->callback([&] {
    action = WithMemory(ctx, false, [&](memory::MemoryService& svc) {
      auto m = svc.Forget(f.id);
      if (!m.ok()) return Fail(m.status());
      ctx.out.Message("forgot memory " + std::to_string(f.id));
      return 0;
    });
  });

  auto* del = cmd->add_subcommand("delete", "Delete a memory for good");
  del->add_option("id", f.id, "Memory id")->required()->check(CLI::PositiveNumber);
  AddDbOption(del, ctx);
  del->callback([&] {
    action = WithMemory(ctx, false, [&](memory::MemoryService& svc) {
      Status st = svc.Delete(f.id);
      if (!st.ok()) return Fail(st);
      ctx.out.Message("deleted memory " + std::to_string(f.id));
      return 0;
    });
  });

  auto* reembed =
      cmd->add_subcommand("reembed", "Embed memories lacking a vector for the current model");
  AddDbOption(reembed, ctx);
  reembed->callback([&] {
    action = WithMemory(ctx, false, [&](memory::MemoryService& svc) {
      auto n = svc.Reembed();
      if (!n.ok()) return Fail(n.status());
      ctx.out.Message("embedded " + std::to_string(*n) + " memories with " +
                      svc.embedder().model());
      return 0;
    });
  });

  auto* stats = cmd->add_subcommand("stats", "Counts, model and index size");
  auto* st_proj = stats->add_option("--project", f.project, "Project name or id");
  AddDbOption(stats, ctx);
  stats->callback([=, &ctx, &action] {
    action = WithMemory(ctx, true, [=, &ctx](memory::MemoryService& svc) {
      auto st = svc.Stats(st_proj->count() ? std::optional<std::string>(f.project) : std::nullopt);
      if (!st.ok()) return Fail(st.status());
      ctx.out.Object(memory::ToJson(*st));
      return 0;
    });
  });
}

void DefineVersion(CLI::App* version, Ctx& ctx, Action& action) {
  version->callback([&] {
    action = [&] {
      if (ctx.out.json) {
        ctx.out.Object(json::object{{"name", "devstream"}, {"version", DEVSTREAM_VERSION}});
      } else {
        std::cout << "devstream " << DEVSTREAM_VERSION << "\n";
      }
      return 0;
    };
  });
}

void DefineServe(CLI::App* serve, Ctx& ctx, Action& action) {
  // serve's flags are settings (highest precedence); only given ones count.
  static std::map<std::string, std::string> serve_flags;
  static std::string host, port, mode, threads, pool, body_limit;
  struct ServeFlag {
    const char* flag;
    std::string* value;
    const char* key;
    const char* help;
  };
  static const ServeFlag kServeFlags[] = {
      {"--host", &host, "server.host", "Address to listen on (server.host, default 127.0.0.1)"},
      {"--port", &port, "server.port", "Port (server.port, default 8000; 0 picks a free one)"},
      {"--mode", &mode, "service.mode", "api | task_engine | all (service.mode, default all)"},
      {"--threads", &threads, "server.threads", "HTTP threads (server.threads, default 4)"},
      {"--pool", &pool, "database.reader_pool", "Reader connections (database.reader_pool)"},
      {"--body-limit", &body_limit, "server.body_limit_bytes",
       "Max request body bytes (server.body_limit_bytes, default 1 MiB)"},
  };
  std::vector<std::pair<CLI::Option*, const ServeFlag*>> given;
  for (const auto& f : kServeFlags)
    given.emplace_back(serve->add_option(f.flag, *f.value, f.help), &f);
  AddDbOption(serve, ctx);
  serve->callback([&, given] {
    for (const auto& [opt, f] : given) {
      if (opt->count()) serve_flags[f->key] = *f->value;
    }
    action = [&] {
      auto settings = ctx.LoadSettings(serve_flags);
      if (!settings.ok()) return Fail(settings.status());
      return RunServe(*settings);
    };
  });
}

// The command a command line names: its first argument that is neither an
// option nor the value of a global option. Empty when there is none.
std::string_view NamedCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--db" || arg == "--config" || arg == "--env") {
      ++i;
    } else if (!arg.starts_with("-")) {
      return arg;
    }
  }
  return {};
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{
      "DevStream: persistent tasks and cross-session memory for AI coding assistants.\n"
      "Every data command works directly on the SQLite database (--db)."};
  app.name("devstream");
  app.require_subcommand(1);
  app.fallthrough();
  Ctx ctx;
  Action action;
  app.add_flag("--json", ctx.out.json, "Machine-readable JSON output");
  app.add_option("--db", ctx.db_path, kDbHelp);
  app.add_option("--config", ctx.config_file,
                 "Settings file (YAML; default: deployment/environments/<env>.yml when an "
                 "environment is named)");
  app.add_option("--env", ctx.environment,
                 "development | staging | production (default: $DEVSTREAM_ENV, else development)");

  std::vector<CommandDef> commands{
      {"version", "Print the version", DefineVersion},
      {"serve", "Run the HTTP API server (and, in mode all, the job worker)", DefineServe},
      {"migrate", "Apply, revert or inspect schema migrations", DefineMigrate},
      {"project", "Create and list projects", DefineProject},
      {"plan", "Intervention plans", DefinePlan},
      {"phase", "Phases of a plan", DefinePhase},
      {"task", "Micro-tasks: create, list, transition, depend", DefineTask},
      {"memory", "Cross-session memory: store, search, context", DefineMemory},
  };
  for (auto group : {EngineCommands(), ApiKeyCommands()}) {
    commands.insert(commands.end(), group.begin(), group.end());
  }
  // Every command is listed (top-level help, the unknown-command check), but
  // only the one the command line names is built, so that a hook process does
  // not pay for the whole tree.
  std::string_view named = NamedCommand(argc, argv);
  bool known = named.empty();
  for (const CommandDef& def : commands) {
    CLI::App* cmd = app.add_subcommand(def.name, def.help);
    if (def.name == named) {
      def.define(cmd, ctx, action);
      known = true;
    }
  }

  if (!known) {
    std::cerr << "devstream: error: unknown command \"" << named << "\" (see devstream --help)\n";
    return kExitUsage;
  }
  // `devstream hook …` runs under Claude Code: whatever is wrong with it,
  // it must exit 0.
  bool hook = named == "hook";
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    if (hook) {
      // Exit 2 would make Claude Code block the tool call or drop the prompt.
      LogHookFailure(argc > 2 ? argv[2] : "(none)",
                     std::string("unusable command line: ") + e.what());
      std::cerr << "devstream: error: " << e.what() << " (hook: exiting 0)\n";
      return 0;
    }
    // Subcommand help requests surface as CallForHelp from the subcommand.
    std::cerr << "devstream: error: " << e.what() << " (see devstream --help)\n";
    return kExitUsage;
  }
  if (!action) {
    std::cerr << "devstream: error: missing subcommand (see devstream --help)\n";
    return kExitUsage;
  }
  return action();
}

}  // namespace ds::app
