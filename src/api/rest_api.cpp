#include "api/rest_api.h"

#include "api/access.h"
#include "api/handler_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>

#include "core/clock.h"
#include "core/json.h"
#include "engine/worker.h"
#include "memory/codec.h"
#include "tasks/codec.h"
#include "tasks/state_machine.h"

namespace ds::api {
namespace {

using tasks::ToJson;

template <typename T>
Response Created(const T& v) {
  Response r = JsonResponse(201, ToJson(v));
  return r;
}

Response WithEtag(Response r, int64_t version) {
  r.headers.emplace_back("ETag", "\"" + std::to_string(version) + "\"");
  return r;
}

// A list item written into `w`: tasks directly, the rest through their
// json::object.
template <typename T>
void WriteItem(JsonWriter& w, const T& item) {
  w.Value(ToJson(item));
}
void WriteItem(JsonWriter& w, const tasks::Task& task) {
  tasks::WriteJson(task, w);
}

// Room for a typical task's JSON (1-2 KB), so the body is not regrown about
// eight times while it is written.
constexpr size_t kTaskJsonReserve = 2048;

// {"items": [...], "next_cursor": cursor or null}
template <typename T>
Response ItemsResponse(const std::vector<T>& items, const std::optional<std::string>& cursor) {
  Response res;
  res.body.reserve(kTaskJsonReserve * std::min<size_t>(items.size() + 1, 64));
  JsonWriter w(res.body);
  w.BeginObject();
  w.Key("items");
  w.BeginArray();
  for (const auto& it : items) WriteItem(w, it);
  w.EndArray();
  w.Member("next_cursor", cursor);
  w.EndObject();
  return res;
}

template <typename T>
Response PageResponse(const tasks::Page<T>& page) {
  return ItemsResponse(page.items, page.next_cursor);
}

template <typename T>
Response ListResponse(const std::vector<T>& v) {
  return ItemsResponse(v, std::nullopt);
}

}  // namespace

void RegisterRestRoutes(Router& router, RestContext& ctx) {
  tasks::TaskService& svc = ctx.tasks;

  // ---- projects ----
  router.Add("GET", "/api/v1/projects", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto list, svc.ListProjects());
               if (!Unconfined(req)) {  // a project-bound key sees its project only
                 std::erase_if(list, [&](const auto& p) { return p.id != req.caller->project_id; });
               }
               return ListResponse(list);
             }));
  router.Add("POST", "/api/v1/projects", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               if (!body.is_object()) return Status::InvalidArgument("project must be an object");
               ObjectReader r(body.get_object(), "project");
               auto name = r.String("name", true, 1, 100);
               auto root = r.String("root_path", false, 1, 4096);
               DS_RETURN_IF_ERROR(r.Finish());
               DS_ASSIGN_OR_RETURN(auto p, svc.CreateProject(*name, root));
               return Created(p);
             }));
  router.Add("GET", "/api/v1/projects/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto p, svc.GetProject(req.params["id"]));
               return JsonResponse(200, ToJson(p));
             }));

  // ---- plans ----
  router.Add("POST", "/api/v1/plans", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, tasks::DecodePlanInput(body));
               if (!in.project) in.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(auto plan, svc.CreatePlan(in));
               return WithEtag(Created(plan), plan.version);
             }));
  router.Add("GET", "/api/v1/plans", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project", "status", "limit", "cursor"}));
               tasks::PlanFilter f;
               f.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(f.status, QueryEnum(req, "status", tasks::PlanStatuses()));
               DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
               if (limit) f.limit = *limit;
               f.cursor = req.Query("cursor");
               DS_ASSIGN_OR_RETURN(auto page, svc.ListPlans(f));
               return PageResponse(page);
             }));
  router.Add("GET", "/api/v1/plans/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto plan, svc.GetPlan(req.params["id"]));
               DS_ASSIGN_OR_RETURN(auto progress, svc.PlanProgress(plan.id));
               json::object o = ToJson(plan);
               o["progress"] = tasks::ToJson(progress);
               return WithEtag(JsonResponse(200, o), plan.version);
             }));
  router.Add("PATCH", "/api/v1/plans/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto patch, tasks::DecodePlanPatch(body));
               DS_ASSIGN_OR_RETURN(patch.expected_version,
                                   MergeVersion(req, patch.expected_version));
               DS_ASSIGN_OR_RETURN(auto plan, svc.UpdatePlan(req.params["id"], patch));
               return WithEtag(JsonResponse(200, ToJson(plan)), plan.version);
             }));
  router.Add("DELETE", "/api/v1/plans/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto version, IfMatchVersion(req));
               DS_RETURN_IF_ERROR(svc.DeletePlan(req.params["id"], version));
               return NoContent();
             }));
  router.Add("GET", "/api/v1/plans/{id}/graph", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto g, svc.Graph(req.params["id"]));
               return JsonResponse(200, tasks::ToJson(g));
             }));

  // ---- phases ----
  router.Add("POST", "/api/v1/plans/{id}/phases", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, tasks::DecodePhaseInput(body));
               DS_ASSIGN_OR_RETURN(auto phase, svc.CreatePhase(req.params["id"], in));
               return WithEtag(Created(phase), phase.version);
             }));
  router.Add("GET", "/api/v1/plans/{id}/phases", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto list, svc.ListPhases(req.params["id"]));
               return ListResponse(list);
             }));
  router.Add("GET", "/api/v1/phases/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto phase, svc.GetPhase(req.params["id"]));
               return WithEtag(JsonResponse(200, ToJson(phase)), phase.version);
             }));
  router.Add("PATCH", "/api/v1/phases/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto patch, tasks::DecodePhasePatch(body));
               DS_ASSIGN_OR_RETURN(patch.expected_version,
                                   MergeVersion(req, patch.expected_version));
               DS_ASSIGN_OR_RETURN(auto phase, svc.UpdatePhase(req.params["id"], patch));
               return WithEtag(JsonResponse(200, ToJson(phase)), phase.version);
             }));
  router.Add("DELETE", "/api/v1/phases/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto version, IfMatchVersion(req));
               DS_RETURN_IF_ERROR(svc.DeletePhase(req.params["id"], version));
               return NoContent();
             }));

  // ---- tasks ----
  auto create_task = [&svc](Request& req, std::optional<std::string> phase_id) -> Result<Response> {
    DS_RETURN_IF_ERROR(CheckQuery(req, {}));
    DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
    DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeTaskInput(body));
    if (phase_id && in.phase_id && *in.phase_id != *phase_id) {
      return Status::InvalidArgument("task.phase_id disagrees with the phase in the URL")
          .WithDetail("field", "phase_id");
    }
    if (!phase_id) phase_id = in.phase_id;
    if (!phase_id) {
      return Status::InvalidArgument("task.phase_id: is required").WithDetail("field", "phase_id");
    }
    DS_ASSIGN_OR_RETURN(auto task, svc.CreateTask(*phase_id, in));
    return WithEtag(Created(task), task.version);
  };
  router.Add("POST", "/api/v1/phases/{id}/tasks",
             H([create_task](Request& req) { return create_task(req, req.params["id"]); }));
  router.Add("POST", "/api/v1/tasks",
             H([create_task](Request& req) { return create_task(req, std::nullopt); }));
  router.Add("GET", "/api/v1/phases/{id}/tasks", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"limit", "cursor"}));
               DS_RETURN_IF_ERROR(svc.GetPhase(req.params["id"]).status());
               tasks::TaskFilter f;
               f.phase_id = req.params["id"];
               DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
               if (limit) f.limit = *limit;
               f.cursor = req.Query("cursor");
               DS_ASSIGN_OR_RETURN(auto page, svc.ListTasks(f));
               return PageResponse(page);
             }));
  router.Add(
      "GET", "/api/v1/tasks", H([&svc](Request& req) -> Result<Response> {
        DS_RETURN_IF_ERROR(CheckQuery(req, {"project", "status", "plan_id", "phase_id", "task_type",
                                            "assigned_agent", "priority_min", "limit", "cursor"}));
        tasks::TaskFilter f;
        f.project = RequestProject(req);
        DS_ASSIGN_OR_RETURN(f.status, QueryEnum(req, "status", tasks::TaskStatuses()));
        DS_ASSIGN_OR_RETURN(f.task_type, QueryEnum(req, "task_type", tasks::TaskTypes()));
        f.plan_id = req.Query("plan_id");
        f.phase_id = req.Query("phase_id");
        f.assigned_agent = req.Query("assigned_agent");
        DS_ASSIGN_OR_RETURN(f.priority_min, QueryInt(req, "priority_min", 1, 10));
        DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
        if (limit) f.limit = *limit;
        f.cursor = req.Query("cursor");
        if (f.plan_id) DS_RETURN_IF_ERROR(svc.GetPlan(*f.plan_id).status());
        if (f.phase_id) DS_RETURN_IF_ERROR(svc.GetPhase(*f.phase_id).status());
        DS_ASSIGN_OR_RETURN(auto page, svc.ListTasks(f));
        return PageResponse(page);
      }));
  router.Add("GET", "/api/v1/tasks/ready", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project", "plan_id", "limit"}));
               tasks::ReadyFilter f;
               f.project = RequestProject(req);
               f.plan_id = req.Query("plan_id");
               DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
               if (limit) f.limit = *limit;
               DS_ASSIGN_OR_RETURN(auto list, svc.Ready(f));
               return ListResponse(list);
             }));
  engine::TaskWorkflow& workflow = ctx.workflow;
  router.Add("GET", "/api/v1/tasks/{id}", H([&svc, &workflow](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"with_context", "context_limit"}));
               DS_ASSIGN_OR_RETURN(auto with_context, QueryBool(req, "with_context"));
               DS_ASSIGN_OR_RETURN(auto context_limit, QueryInt(req, "context_limit", 1, 50));
               DS_ASSIGN_OR_RETURN(auto task, svc.GetTask(req.params["id"]));
               Response res;
               res.body.reserve(kTaskJsonReserve);
               JsonWriter w(res.body);
               w.BeginObject();
               tasks::WriteJsonMembers(task, w);
               if (with_context.value_or(false)) {
                 DS_ASSIGN_OR_RETURN(auto hits,
                                     workflow.RelevantMemories(task, context_limit.value_or(5)));
                 w.Key("context");
                 w.BeginArray();
                 for (const auto& h : hits) w.Value(memory::ToJson(h));
                 w.EndArray();
               }
               w.EndObject();
               return WithEtag(std::move(res), task.version);
             }));
  router.Add("PATCH", "/api/v1/tasks/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto patch, tasks::DecodeTaskPatch(body));
               DS_ASSIGN_OR_RETURN(patch.expected_version,
                                   MergeVersion(req, patch.expected_version));
               DS_ASSIGN_OR_RETURN(auto task, svc.UpdateTask(req.params["id"], patch));
               return WithEtag(JsonResponse(200, ToJson(task)), task.version);
             }));
  router.Add("DELETE", "/api/v1/tasks/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto version, IfMatchVersion(req));
               DS_RETURN_IF_ERROR(svc.DeleteTask(req.params["id"], version));
               return NoContent();
             }));
  router.Add("POST", "/api/v1/tasks/{id}/transition",
             H([&workflow](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeTransition(body));
               DS_ASSIGN_OR_RETURN(in.expected_version, MergeVersion(req, in.expected_version));
               if (!in.actor) in.actor = RequestActor(req);
               DS_ASSIGN_OR_RETURN(auto task, workflow.Transition(req.params["id"], in));
               return WithEtag(JsonResponse(200, ToJson(task)), task.version);
             }));
  router.Add("POST", "/api/v1/tasks/{id}/dependencies", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto dep, tasks::DecodeDependency(body));
               DS_ASSIGN_OR_RETURN(auto task, svc.AddDependency(req.params["id"], dep));
               return WithEtag(JsonResponse(200, ToJson(task)), task.version);
             }));
  router.Add("DELETE", "/api/v1/tasks/{id}/dependencies/{dep}",
             H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto task,
                                   svc.RemoveDependency(req.params["id"], req.params["dep"]));
               return WithEtag(JsonResponse(200, ToJson(task)), task.version);
             }));
  router.Add("GET", "/api/v1/tasks/{id}/events", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto events, svc.Events(req.params["id"]));
               return ListResponse(events);
             }));

  // ---- version, OpenAPI (health: api/health.h) ----
  router.Add("GET", "/version", [started = ctx.started_at](Request&) -> Response {
    return JsonResponse(
        200, json::object{
                 {"name", "devstream"}, {"version", DEVSTREAM_VERSION}, {"started_at", started}});
  });
  router.Add(
      "GET", "/openapi.json",
      [](Request&) -> Response {
        Response r;
        r.body = OpenApiDocument();
        return r;
      },
      Access::kPublic);
}

}  // namespace ds::api
