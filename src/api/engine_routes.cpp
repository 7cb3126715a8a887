#include "api/engine_routes.h"

#include <algorithm>

#include "api/handler_util.h"
#include "engine/job_handlers.h"
#include "memory/codec.h"
#include "tasks/codec.h"

namespace ds::api {
namespace {

Response TaskResponse(int status, json::object body, int64_t version) {
  Response r = JsonResponse(status, body);
  r.headers.emplace_back("ETag", "\"" + std::to_string(version) + "\"");
  return r;
}

json::value JobPageJson(const engine::JobPage& page) {
  json::array items;
  for (const auto& j : page.items) items.push_back(engine::ToJson(j));
  json::value cursor = nullptr;
  if (page.next_cursor) cursor = json::string(*page.next_cursor);
  return json::object{{"items", std::move(items)}, {"next_cursor", cursor}};
}

}  // namespace

void RegisterEngineRoutes(Router& router, EngineContext& ctx) {
  engine::TaskWorkflow& workflow = ctx.workflow;
  engine::JobQueue& jobs = ctx.jobs;
  engine::SessionService& sessions = ctx.sessions;

  // ---- leases ----
  router.Add("POST", "/api/v1/tasks/claim", H([&workflow](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project", "with_context", "context_limit"}));
               DS_ASSIGN_OR_RETURN(auto with_context, QueryBool(req, "with_context"));
               DS_ASSIGN_OR_RETURN(auto context_limit, QueryInt(req, "context_limit", 1, 50));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeClaim(body, RequestActor(req)));
               if (!in.project) in.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(auto task, workflow.Claim(in));
               if (!task) return NoContent();
               json::object out = tasks::ToJson(*task);
               if (with_context.value_or(false)) {
                 DS_ASSIGN_OR_RETURN(auto hits,
                                     workflow.RelevantMemories(*task, context_limit.value_or(5)));
                 json::array context;
                 for (const auto& h : hits) context.push_back(memory::ToJson(h));
                 out["context"] = std::move(context);
               }
               return TaskResponse(200, std::move(out), task->version);
             }));
  router.Add("POST", "/api/v1/tasks/{id}/heartbeat",
             H([&workflow](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, tasks::DecodeHeartbeat(body, RequestActor(req)));
               DS_ASSIGN_OR_RETURN(auto task, workflow.tasks().Heartbeat(req.params["id"], in));
               return TaskResponse(200, tasks::ToJson(task), task.version);
             }));

  // ---- jobs ----
  router.Add("GET", "/api/v1/jobs", H([&jobs](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"state", "kind", "limit", "cursor"}));
               engine::JobFilter f;
               DS_ASSIGN_OR_RETURN(f.state, QueryEnum(req, "state", engine::JobStates()));
               f.kind = req.Query("kind");
               DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
               if (limit) f.limit = *limit;
               f.cursor = req.Query("cursor");
               DS_ASSIGN_OR_RETURN(auto page, jobs.List(f));
               return JsonResponse(200, JobPageJson(page));
             }),
             Access::kAdmin);
  router.Add("POST", "/api/v1/jobs", H([&jobs, &ctx](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "job"));
               ObjectReader r(*obj, "job");
               std::vector<std::string_view> kinds(ctx.job_kinds.begin(), ctx.job_kinds.end());
               auto kind = r.Enum("kind", true, kinds);
               json::object payload;
               if (const json::value* p = r.Raw("payload"); p && !p->is_null()) {
                 if (!p->is_object())
                   r.Fail("payload", "must be an object");
                 else
                   payload = p->as_object();
               }
               engine::EnqueueOptions opts;
               opts.dedup_key = r.String("dedup_key", false, 1, 200);
               if (auto v = r.Int("priority", false, 1, 10)) opts.priority = static_cast<int>(*v);
               if (auto v = r.Int("max_attempts", false, 1, 100)) {
                 opts.max_attempts = static_cast<int>(*v);
               }
               DS_RETURN_IF_ERROR(r.Finish());
               DS_RETURN_IF_ERROR(engine::ValidateJobPayload(*kind, payload));
               DS_ASSIGN_OR_RETURN(auto res, jobs.Enqueue(*kind, payload, opts));
               json::object out = engine::ToJson(res.job);
               out["deduplicated"] = res.deduplicated;
               return JsonResponse(res.deduplicated ? 200 : 201, out);
             }),
             Access::kAdmin);
  router.Add("GET", "/api/v1/jobs/{id}", H([&jobs](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto job, jobs.Get(req.params["id"]));
               return JsonResponse(200, engine::ToJson(job));
             }),
             Access::kAdmin);
  router.Add("POST", "/api/v1/jobs/{id}/retry", H([&jobs](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(auto job, jobs.Retry(req.params["id"]));
               return JsonResponse(200, engine::ToJson(job));
             }),
             Access::kAdmin);

  // ---- sessions ----
  router.Add("POST", "/api/v1/sessions", H([&sessions](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, engine::DecodeSessionInput(body, RequestActor(req)));
               if (!in.project) in.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(auto started, sessions.Start(in));
               return JsonResponse(started.second ? 201 : 200, engine::ToJson(started.first));
             }));
  router.Add("GET", "/api/v1/sessions/latest", H([&sessions](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(auto s, sessions.Latest(RequestProject(req)));
               return JsonResponse(200, engine::ToJson(s));
             }));
  router.Add("GET", "/api/v1/sessions/{id}", H([&sessions](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(auto s, sessions.Get(req.params["id"], RequestProject(req)));
               return JsonResponse(200, engine::ToJson(s));
             }));
  router.Add("POST", "/api/v1/sessions/{id}/end", H([&sessions](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               if (!req.body.empty()) {
                 DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
                 DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "session end"));
                 ObjectReader r(*obj, "session end");
                 DS_RETURN_IF_ERROR(r.Finish());
               }
               DS_ASSIGN_OR_RETURN(auto s, sessions.End(req.params["id"], RequestProject(req)));
               return JsonResponse(200, engine::ToJson(s));
             }));
}

}  // namespace ds::api
