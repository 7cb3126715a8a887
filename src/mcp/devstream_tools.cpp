#include "mcp/devstream_tools.h"

#include <map>
#include <set>

#include "core/encoding.h"
#include "mcp/schemas.h"
#include "memory/codec.h"
#include "tasks/codec.h"

namespace ds::mcp {
namespace {

constexpr size_t kMaxListedLines = 20;

json::object Obj(std::initializer_list<std::pair<json::string_view, json::value_ref>> init) {
  return json::object(init);
}

json::object StringProp(size_t min_len, size_t max_len, const char* description) {
  return Obj({{"type", "string"},
              {"minLength", min_len},
              {"maxLength", max_len},
              {"description", description}});
}

// An object schema with the given properties and required names, closed to
// other keys (the decoders reject unknown fields).
json::object ObjectSchema(json::object properties, std::initializer_list<const char*> required,
                          const char* description = nullptr) {
  json::array req;
  for (const char* r : required) req.emplace_back(r);
  json::object s{
      {"type", "object"}, {"properties", std::move(properties)}, {"additionalProperties", false}};
  if (!req.empty()) s["required"] = std::move(req);
  if (description) s["description"] = description;
  return s;
}

json::object& Props(json::object& schema) {
  return schema["properties"].as_object();
}

void Require(json::object& schema, const char* name) {
  json::value& req = schema["required"];
  if (!req.is_array()) req = json::array{};
  for (const auto& r : req.as_array()) {
    if (r.is_string() && r.as_string() == name) return;
  }
  req.as_array().emplace_back(name);
}

// The project a call acts in: the argument, else the transport's default.
void DefaultProject(json::object& args, const CallContext& ctx) {
  if (!args.contains("project") && !ctx.default_project.empty()) {
    args["project"] = ctx.default_project;
  }
}

// Takes a key out of the arguments (tool-only fields the decoders don't know).
json::value Take(json::object& args, std::string_view key) {
  auto it = args.find(key);
  if (it == args.end()) return nullptr;
  json::value v = it->value();
  args.erase(it);
  return v;
}

Status WrongType(std::string_view key, std::string_view want) {
  return Status::InvalidArgument(std::string(key) + " must be " + std::string(want))
      .WithDetail("field", json::string(key));
}

std::string TaskLine(const tasks::Task& t) {
  return t.id + " [" + t.status + ", P" + std::to_string(t.priority) + ", " + t.task_type + "] " +
         t.title;
}

template <typename T>
json::object PageJson(const std::vector<T>& items, const std::optional<std::string>& cursor) {
  json::array a;
  for (const auto& it : items) a.push_back(tasks::ToJson(it));
  return {{"items", std::move(a)}, {"next_cursor", OptionalJson(cursor)}};
}

std::string HitsText(const std::vector<memory::SearchHit>& hits) {
  std::string text;
  for (const auto& h : hits) {
    text += "\n- memory " + std::to_string(h.memory.id) + " (" + h.memory.content_type +
            (h.memory.file_path ? ", " + *h.memory.file_path : "") +
            "): " + FirstLine(h.memory.content, 120);
  }
  return text;
}

// ---- tools ----

Tool ListTasks(ToolServices& s) {
  json::object in = ObjectSchema(
      {{"project", StringProp(1, 200, "Project name or id (default: the current project)")},
       {"plan_id", StringProp(1, 64, "Only tasks of this plan")},
       {"phase_id", StringProp(1, 64, "Only tasks of this phase")},
       {"status", ApiSchema("TaskStatus")},
       {"task_type", ApiSchema("TaskType")},
       {"assigned_agent", StringProp(1, 200, "Only tasks assigned to this agent")},
       {"ready",
        Obj({{"type", "boolean"},
             {"description", "Only tasks that can start now (dependencies done), best first"}})},
       {"limit", Obj({{"type", "integer"}, {"minimum", 1}, {"maximum", 500}})},
       {"cursor", StringProp(1, 200, "next_cursor of the previous page")}},
      {});
  return Tool{"devstream_list_tasks",
              "List tasks",
              "List micro-tasks, filtered by project, plan, phase, status, type or agent; "
              "ready=true lists the tasks that can start now, best first.",
              std::move(in),
              ApiSchema("TaskPage"),
              true,
              [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
                ObjectReader r(args, "arguments");
                auto project = r.String("project", false, 1, 200);
                auto plan_id = r.String("plan_id", false, 1, 64);
                auto phase_id = r.String("phase_id", false, 1, 64);
                auto status = r.Enum("status", false, tasks::TaskStatuses());
                auto task_type = r.Enum("task_type", false, tasks::TaskTypes());
                auto agent = r.String("assigned_agent", false, 1, 200);
                bool ready = r.Bool("ready", false).value_or(false);
                auto limit = r.Int("limit", false, 1, 500);
                auto cursor = r.String("cursor", false, 1, 200);
                DS_RETURN_IF_ERROR(r.Finish());
                if (!project && !plan_id && !phase_id && !ctx.default_project.empty()) {
                  project = ctx.default_project;
                }
                std::vector<tasks::Task> items;
                std::optional<std::string> next;
                if (ready) {
                  tasks::ReadyFilter f;
                  f.project = project;
                  f.plan_id = plan_id;
                  if (limit) f.limit = static_cast<int>(*limit);
                  DS_ASSIGN_OR_RETURN(items, s.tasks.Ready(f));
                } else {
                  tasks::TaskFilter f;
                  f.project = project;
                  f.plan_id = plan_id;
                  f.phase_id = phase_id;
                  f.status = status;
                  f.task_type = task_type;
                  f.assigned_agent = agent;
                  if (limit) f.limit = static_cast<int>(*limit);
                  f.cursor = cursor;
                  DS_ASSIGN_OR_RETURN(auto page, s.tasks.ListTasks(f));
                  items = std::move(page.items);
                  next = page.next_cursor;
                }
                std::string text =
                    std::to_string(items.size()) + (ready ? " ready" : "") + " task(s)";
                for (size_t i = 0; i < items.size() && i < kMaxListedLines; ++i) {
                  text += "\n- " + TaskLine(items[i]);
                }
                if (items.size() > kMaxListedLines) text += "\n…";
                if (next) text += "\nMore: call again with cursor " + *next;
                return ToolResult{text, PageJson(items, next)};
              }};
}

Tool CreateTask(ToolServices& s) {
  json::object in = ApiSchema("TaskInput");
  Props(in)["phase_id"] = StringProp(1, 64, "The phase to add the task to");
  Require(in, "phase_id");
  in["description"] = "A micro-task to add to a phase.";
  return Tool{
      "devstream_create_task",
      "Create a task",
      "Add a micro-task (at most 10 minutes of work) to a phase. depends_on lists task "
      "ids it waits for.",
      std::move(in),
      ApiSchema("Task"),
      false,
      [&s](const json::object& args, const CallContext&) -> Result<ToolResult> {
        DS_ASSIGN_OR_RETURN(auto input, tasks::DecodeTaskInput(args));
        if (!input.phase_id) {
          return Status::InvalidArgument("phase_id is required").WithDetail("field", "phase_id");
        }
        DS_ASSIGN_OR_RETURN(auto t, s.tasks.CreateTask(*input.phase_id, input));
        return ToolResult{"Created task " + TaskLine(t) + " in phase " + t.phase_id,
                          tasks::ToJson(t)};
      }};
}

Tool UpdateTask(ToolServices& s) {
  json::object in = ApiSchema("TaskPatch");
  Props(in)["task_id"] = StringProp(1, 64, "The task to change");
  Props(in)["status"] = ApiSchema("TaskStatus");
  Props(in)["status"].as_object()["description"] =
      "Move the task to this status (pending, active, completed, failed, blocked, skipped)";
  Props(in)["note"] =
      StringProp(0, 20000, "Why (kept in the audit trail; the outcome when completing)");
  Props(in)["agent"] = StringProp(1, 200, "Who acts (default: this client's name)");
  Props(in)["force"] =
      Obj({{"type", "boolean"}, {"description", "Act on a task leased to another agent"}});
  Require(in, "task_id");
  in["description"] =
      "The task to change (task_id), the fields to change, and/or the status to move it to.";
  return Tool{
      "devstream_update_task",
      "Update a task",
      "Change a task's fields and/or move it to another status. Completing stores its notes "
      "and outcome as a memory linked to the task.",
      std::move(in),
      ApiSchema("Task"),
      false,
      [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
        json::object patch_args = args;
        json::value id = Take(patch_args, "task_id");
        json::value status = Take(patch_args, "status");
        json::value note = Take(patch_args, "note");
        json::value agent = Take(patch_args, "agent");
        json::value force = Take(patch_args, "force");
        if (!id.is_string() || id.as_string().empty()) return WrongType("task_id", "a task id");
        std::string task_id(id.as_string());
        if (!status.is_null() && !status.is_string()) return WrongType("status", "a string");
        DS_ASSIGN_OR_RETURN(auto patch, tasks::DecodeTaskPatch(patch_args));
        bool has_patch = !patch_args.empty();
        if (!has_patch && status.is_null()) {
          return Status::InvalidArgument("nothing to change: give status and/or task fields");
        }
        std::optional<tasks::Task> t;
        if (has_patch) {
          DS_ASSIGN_OR_RETURN(auto updated, s.tasks.UpdateTask(task_id, patch));
          t = std::move(updated);
        }
        if (!status.is_null()) {
          json::object body{{"to", status}};
          if (!note.is_null()) body["note"] = note;
          if (!force.is_null()) body["force"] = force;
          body["actor"] = agent.is_null() ? json::value(ctx.agent) : agent;
          DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeTransition(body));
          in.channel = "mcp";
          DS_ASSIGN_OR_RETURN(auto moved, s.workflow.Transition(task_id, in));
          t = std::move(moved);
        }
        std::string text = "Updated task " + TaskLine(*t);
        if (t->status == "completed") text += "; its outcome is stored as a memory";
        return ToolResult{text, tasks::ToJson(*t)};
      }};
}

Tool ListPlans(ToolServices& s) {
  json::object in = ObjectSchema(
      {{"project", StringProp(1, 200, "Project name or id (default: the current project)")},
       {"status", ApiSchema("PlanStatus")},
       {"limit", Obj({{"type", "integer"}, {"minimum", 1}, {"maximum", 500}})},
       {"cursor", StringProp(1, 200, "next_cursor of the previous page")}},
      {});
  return Tool{"devstream_list_plans",
              "List plans",
              "List the intervention plans of a project, with their status.",
              std::move(in),
              ApiSchema("PlanPage"),
              true,
              [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
                ObjectReader r(args, "arguments");
                tasks::PlanFilter f;
                f.project = r.String("project", false, 1, 200);
                f.status = r.Enum("status", false, tasks::PlanStatuses());
                if (auto l = r.Int("limit", false, 1, 500)) f.limit = static_cast<int>(*l);
                f.cursor = r.String("cursor", false, 1, 200);
                DS_RETURN_IF_ERROR(r.Finish());
                if (!f.project && !ctx.default_project.empty()) f.project = ctx.default_project;
                DS_ASSIGN_OR_RETURN(auto page, s.tasks.ListPlans(f));
                std::string text = std::to_string(page.items.size()) + " plan(s)";
                for (size_t i = 0; i < page.items.size() && i < kMaxListedLines; ++i) {
                  const auto& p = page.items[i];
                  text += "\n- " + p.id + " [" + p.status + ", P" + std::to_string(p.priority) +
                          "] " + p.title;
                }
                if (page.next_cursor) text += "\nMore: call again with cursor " + *page.next_cursor;
                return ToolResult{text, PageJson(page.items, page.next_cursor)};
              }};
}

Tool CreatePlan(ToolServices& s) {
  json::object task = ApiSchema("TaskInput");
  Props(task).erase("phase_id");
  Props(task)["depends_on"] =
      Obj({{"type", "array"},
           {"maxItems", 100},
           {"items", StringProp(1, 200, "A task id, or the title of a task earlier in this call")},
           {"description",
            "Tasks this one waits for: existing ids or titles of tasks listed earlier "
            "in this call"}});
  json::object phase = ApiSchema("PhaseInput");
  Props(phase).erase("depends_on");
  Props(phase)["tasks"] = Obj({{"type", "array"}, {"maxItems", 200}, {"items", task}});
  json::object in = ApiSchema("PlanInput");
  Props(in)["phases"] = Obj({{"type", "array"},
                             {"maxItems", 50},
                             {"items", phase},
                             {"description", "Phases in order, each with its tasks"}});
  Props(in)["sequential"] =
      Obj({{"type", "boolean"},
           {"description", "Each phase depends on the previous one (default true)"}});
  json::object out =
      ObjectSchema({{"plan", ApiSchema("Plan")},
                    {"phases", Obj({{"type", "array"}, {"items", ApiSchema("Phase")}})},
                    {"tasks", Obj({{"type", "array"}, {"items", ApiSchema("Task")}})}},
                   {"plan", "phases", "tasks"});
  return Tool{
      "devstream_create_plan",
      "Create a plan",
      "Create a plan with its phases and their tasks in one call. All or nothing: on any error "
      "nothing is created.",
      std::move(in),
      std::move(out),
      false,
      [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
        json::object plan_args = args;
        json::value phases_arg = Take(plan_args, "phases");
        json::value sequential_arg = Take(plan_args, "sequential");
        DefaultProject(plan_args, ctx);
        if (!sequential_arg.is_null() && !sequential_arg.is_bool()) {
          return WrongType("sequential", "a boolean");
        }
        bool sequential = sequential_arg.is_null() || sequential_arg.as_bool();
        if (!phases_arg.is_null() && !phases_arg.is_array()) return WrongType("phases", "an array");
        // Validate everything before writing anything.
        DS_ASSIGN_OR_RETURN(auto plan_in, tasks::DecodePlanInput(plan_args));
        struct PhaseSpec {
          tasks::PhaseInput input;
          std::vector<std::pair<tasks::TaskInput, std::vector<std::string>>> tasks;
        };
        std::vector<PhaseSpec> specs;
        std::set<std::string> titles;
        if (phases_arg.is_array()) {
          for (size_t i = 0; i < phases_arg.as_array().size(); ++i) {
            const json::value& pv = phases_arg.as_array()[i];
            std::string where = "phases[" + std::to_string(i) + "]";
            if (!pv.is_object()) return WrongType(where, "an object");
            json::object pa = pv.as_object();
            json::value tasks_arg = Take(pa, "tasks");
            auto phase_in = tasks::DecodePhaseInput(pa);
            if (!phase_in.ok()) {
              return Status::InvalidArgument(where + ": " + phase_in.status().message());
            }
            PhaseSpec spec{std::move(*phase_in), {}};
            if (!tasks_arg.is_null() && !tasks_arg.is_array()) {
              return WrongType(where + ".tasks", "an array");
            }
            if (tasks_arg.is_array()) {
              for (size_t j = 0; j < tasks_arg.as_array().size(); ++j) {
                std::string twhere = where + ".tasks[" + std::to_string(j) + "]";
                const json::value& tv = tasks_arg.as_array()[j];
                if (!tv.is_object()) return WrongType(twhere, "an object");
                json::object ta = tv.as_object();
                json::value deps = Take(ta, "depends_on");
                std::vector<std::string> dep_refs;
                if (!deps.is_null()) {
                  if (!deps.is_array()) return WrongType(twhere + ".depends_on", "an array");
                  for (const auto& d : deps.as_array()) {
                    if (!d.is_string() || d.as_string().empty()) {
                      return WrongType(twhere + ".depends_on[]", "a task id or title");
                    }
                    std::string ref(d.as_string());
                    if (ref.rfind("tsk_", 0) != 0 && !titles.count(ref)) {
                      return Status::InvalidArgument(
                          twhere + ".depends_on: \"" + ref +
                          "\" is neither a task id nor the title of an earlier task in this call");
                    }
                    dep_refs.push_back(ref);
                  }
                }
                auto task_in = tasks::DecodeTaskInput(ta);
                if (!task_in.ok()) {
                  return Status::InvalidArgument(twhere + ": " + task_in.status().message());
                }
                titles.insert(task_in->title);
                spec.tasks.emplace_back(std::move(*task_in), std::move(dep_refs));
              }
            }
            specs.push_back(std::move(spec));
          }
        }
        DS_ASSIGN_OR_RETURN(auto plan, s.tasks.CreatePlan(plan_in));
        json::array phases_json, tasks_json;
        std::map<std::string, std::string> id_by_title;
        auto build = [&]() -> Status {
          std::string previous_phase;
          for (auto& spec : specs) {
            if (sequential && !previous_phase.empty()) spec.input.depends_on = {previous_phase};
            DS_ASSIGN_OR_RETURN(auto phase, s.tasks.CreatePhase(plan.id, spec.input));
            previous_phase = phase.id;
            phases_json.push_back(tasks::ToJson(phase));
            for (auto& [task_in, refs] : spec.tasks) {
              for (const auto& ref : refs) {
                auto it = id_by_title.find(ref);
                task_in.depends_on.push_back(
                    tasks::TaskDependency{it != id_by_title.end() ? it->second : ref, "blocking"});
              }
              DS_ASSIGN_OR_RETURN(auto t, s.tasks.CreateTask(phase.id, task_in));
              id_by_title.emplace(t.title, t.id);
              tasks_json.push_back(tasks::ToJson(t));
            }
          }
          return Status::Ok();
        };
        if (Status st = build(); !st.ok()) {
          s.tasks.DeletePlan(plan.id, std::nullopt).ok();
          return st;
        }
        DS_ASSIGN_OR_RETURN(auto fresh, s.tasks.GetPlan(plan.id));
        std::string text = "Created plan " + fresh.id + " \"" + fresh.title + "\" with " +
                           std::to_string(phases_json.size()) + " phase(s) and " +
                           std::to_string(tasks_json.size()) + " task(s)";
        return ToolResult{text, json::object{{"plan", tasks::ToJson(fresh)},
                                             {"phases", std::move(phases_json)},
                                             {"tasks", std::move(tasks_json)}}};
      }};
}

Tool NextTask(ToolServices& s) {
  json::object in = ObjectSchema(
      {{"agent", StringProp(1, 200, "Who works on it (default: this client's name)")},
       {"lease_seconds",
        Obj({{"type", "integer"},
             {"minimum", tasks::kMinLeaseSeconds},
             {"maximum", tasks::kMaxLeaseSeconds},
             {"description", "How long the task stays yours without a heartbeat (default 300)"}})},
       {"project", StringProp(1, 200, "Project name or id (default: the current project)")},
       {"plan_id", StringProp(1, 64, "Only tasks of this plan")},
       {"with_context", Obj({{"type", "boolean"},
                             {"description",
                              "Also the memories most relevant to the task "
                              "(default true)"}})}},
      {});
  json::object out = ObjectSchema(
      {{"task", Obj({{"anyOf", json::array{ApiSchema("Task"), Obj({{"type", "null"}})}}})},
       {"context", Obj({{"type", "array"}, {"items", ApiSchema("MemorySearchHit")}})}},
      {"task", "context"});
  return Tool{
      "devstream_next_task",
      "Claim the next task",
      "Claim the best ready task (dependencies done, highest priority, oldest) with a lease, "
      "mark it active for you and return it with relevant memories. No task when nothing is "
      "ready. Complete it with devstream_update_task (status completed, note = outcome).",
      std::move(in),
      std::move(out),
      false,
      [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
        json::object claim_args = args;
        json::value with_context = Take(claim_args, "with_context");
        if (!with_context.is_null() && !with_context.is_bool()) {
          return WrongType("with_context", "a boolean");
        }
        DefaultProject(claim_args, ctx);
        DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeClaim(claim_args, ctx.agent));
        DS_ASSIGN_OR_RETURN(auto t, s.workflow.Claim(in));
        if (!t) {
          return ToolResult{"No task is ready (all done, blocked by dependencies, or claimed).",
                            json::object{{"task", nullptr}, {"context", json::array{}}}};
        }
        json::array context;
        std::string text = "Claimed " + TaskLine(*t) + " for " + in.agent + ", lease until " +
                           t->lease_expires_at.value_or("?") + ".";
        if (!t->description.empty()) text += "\n" + FirstLine(t->description, 500);
        if (with_context.is_null() || with_context.as_bool()) {
          DS_ASSIGN_OR_RETURN(auto hits, s.workflow.RelevantMemories(*t));
          for (const auto& h : hits) context.push_back(memory::ToJson(h));
          if (!hits.empty()) text += "\nRelevant memories:" + HitsText(hits);
        }
        return ToolResult{
            text, json::object{{"task", tasks::ToJson(*t)}, {"context", std::move(context)}}};
      }};
}

Tool StoreMemory(ToolServices& s) {
  json::object in = ApiSchema("MemoryInput");
  return Tool{"devstream_store_memory",
              "Store a memory",
              "Store something worth remembering across sessions: a decision, an error and its "
              "fix, a learning, code or context. Secrets are redacted; identical content is "
              "stored once.",
              std::move(in),
              ApiSchema("MemoryStoreResult"),
              false,
              [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
                json::object a = args;
                DefaultProject(a, ctx);
                DS_ASSIGN_OR_RETURN(auto input, memory::DecodeMemoryInput(a));
                if (!input.source) input.source = "mcp";
                DS_ASSIGN_OR_RETURN(auto r, s.memory.Store(input));
                std::string text =
                    std::string(r.deduplicated ? "Already stored as memory " : "Stored memory ") +
                    std::to_string(r.memory.id) + " (" + r.memory.content_type + ")";
                if (r.redactions > 0) {
                  text += "; " + std::to_string(r.redactions) + " secret(s) redacted";
                }
                return ToolResult{text, memory::ToJson(r)};
              }};
}

Tool SearchMemory(ToolServices& s) {
  return Tool{"devstream_search_memory",
              "Search memory",
              "Find memories by meaning and keywords (hybrid search). Each hit has its id, type "
              "and score breakdown.",
              ApiSchema("MemorySearchQuery"),
              ApiSchema("MemorySearchResult"),
              true,
              [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
                json::object a = args;
                DefaultProject(a, ctx);
                DS_ASSIGN_OR_RETURN(auto q, memory::DecodeSearchQuery(a));
                DS_ASSIGN_OR_RETURN(auto r, s.memory.Search(q));
                std::string text =
                    std::to_string(r.hits.size()) + " memor" + (r.hits.size() == 1 ? "y" : "ies") +
                    (r.degraded ? " (keyword only: " + r.degraded_reason + ")" : "") +
                    HitsText(r.hits);
                return ToolResult{text, memory::ToJson(r)};
              }};
}

Tool GetContext(ToolServices& s) {
  return Tool{"devstream_get_context",
              "Get context",
              "Assemble the memories most relevant to a query into Markdown within a token "
              "budget (default 2000 tokens, estimated as bytes / 4).",
              ApiSchema("MemoryContextQuery"),
              ApiSchema("MemoryContextResult"),
              true,
              [&s](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
                json::object a = args;
                DefaultProject(a, ctx);
                DS_ASSIGN_OR_RETURN(auto q, memory::DecodeContextQuery(a));
                DS_ASSIGN_OR_RETURN(auto r, s.memory.Context(q));
                std::string text = r.context.empty() ? "No relevant memories." : r.context;
                return ToolResult{text, memory::ToJson(r)};
              }};
}

Tool ForgetMemory(ToolServices& s) {
  json::object in = ObjectSchema(
      {{"memory_id",
        Obj({{"type", "integer"}, {"minimum", 1}, {"description", "The memory's id"}})}},
      {"memory_id"});
  return Tool{"devstream_forget_memory",
              "Forget a memory",
              "Archive a memory that is wrong or outdated: it stays stored but leaves search and "
              "context.",
              std::move(in),
              ApiSchema("Memory"),
              false,
              [&s](const json::object& args, const CallContext&) -> Result<ToolResult> {
                ObjectReader r(args, "arguments");
                auto id = r.Int("memory_id", true, 1, INT64_MAX);
                DS_RETURN_IF_ERROR(r.Finish());
                DS_ASSIGN_OR_RETURN(auto m, s.memory.Forget(*id));
                return ToolResult{"Archived memory " + std::to_string(m.id) + " (" +
                                      m.content_type + "): " + FirstLine(m.content, 120),
                                  memory::ToJson(m)};
              }};
}

}  // namespace

ToolRegistry DevStreamTools(ToolServices& s) {
  ToolRegistry r;
  r.Add(ListTasks(s));
  r.Add(CreateTask(s));
  r.Add(UpdateTask(s));
  r.Add(ListPlans(s));
  r.Add(StoreMemory(s));
  r.Add(SearchMemory(s));
  r.Add(CreatePlan(s));
  r.Add(NextTask(s));
  r.Add(GetContext(s));
  r.Add(ForgetMemory(s));
  return r;
}

}  // namespace ds::mcp
