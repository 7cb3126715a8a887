#include "api/memory_routes.h"

#include <charconv>

#include "api/handler_util.h"
#include "core/id.h"
#include "memory/codec.h"

namespace ds::api {
namespace {

using memory::ToJson;

Result<int64_t> MemoryId(const Request& req) {
  const std::string& raw = req.params.at("id");
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), id);
  if (ec != std::errc() || ptr != raw.data() + raw.size() || id <= 0) {
    return Status::NotFound("memory " + raw + " does not exist (memory ids are positive integers)");
  }
  return id;
}

void DefaultSourceAndProject(const Request& req, memory::MemoryInput* in) {
  if (!in->source) in->source = "api";
  if (!in->project) in->project = RequestProject(req);
}

}  // namespace

void RegisterMemoryRoutes(Router& router, memory::MemoryService& svc) {
  router.Add("POST", "/api/v1/memories", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto in, memory::DecodeMemoryInput(body));
               DefaultSourceAndProject(req, &in);
               DS_ASSIGN_OR_RETURN(auto r, svc.Store(in));
               // 201 for a new memory, 200 when an identical one already existed.
               return JsonResponse(r.deduplicated ? 200 : 201, ToJson(r));
             }));
  router.Add(
      "POST", "/api/v1/memories/batch", H([&svc](Request& req) -> Result<Response> {
        DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
        DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
        DS_ASSIGN_OR_RETURN(auto inputs, memory::DecodeMemoryBatch(body));
        for (auto& in : inputs) DefaultSourceAndProject(req, &in);
        DS_ASSIGN_OR_RETURN(auto results, svc.StoreBatch(inputs));
        json::array items;
        int created = 0;
        for (const auto& r : results) {
          created += !r.deduplicated;
          items.push_back(json::object{
              {"id", r.memory.id}, {"deduplicated", r.deduplicated}, {"redactions", r.redactions}});
        }
        return JsonResponse(
            created > 0 ? 201 : 200,
            json::object{{"items", std::move(items)},
                         {"created", created},
                         {"deduplicated", static_cast<int>(results.size()) - created}});
      }));
  router.Add(
      "GET", "/api/v1/memories", H([&svc](Request& req) -> Result<Response> {
        DS_RETURN_IF_ERROR(
            CheckQuery(req, {"project", "content_type", "plan_id", "phase_id", "task_id",
                             "session_id", "file_path", "include_archived", "limit", "cursor"}));
        memory::MemoryFilter f;
        f.project = RequestProject(req);
        DS_ASSIGN_OR_RETURN(auto type, QueryEnum(req, "content_type", memory::ContentTypes()));
        if (type) f.content_types.push_back(*type);
        for (auto [key, prefix] : {std::pair{"plan_id", "pln"}, std::pair{"phase_id", "phs"},
                                   std::pair{"task_id", "tsk"}}) {
          auto v = req.Query(key);
          if (v && !IsValidId(*v, prefix)) {
            return Status::InvalidArgument(std::string("query parameter ") + key + ": \"" + *v +
                                           "\" is not a " + prefix + "_… id")
                .WithDetail("parameter", key);
          }
        }
        f.plan_id = req.Query("plan_id");
        f.phase_id = req.Query("phase_id");
        f.task_id = req.Query("task_id");
        f.session_id = req.Query("session_id");
        f.file_path = req.Query("file_path");
        DS_ASSIGN_OR_RETURN(auto archived, QueryBool(req, "include_archived"));
        f.include_archived = archived.value_or(false);
        DS_ASSIGN_OR_RETURN(auto limit, QueryInt(req, "limit", 1, 500));
        if (limit) f.limit = *limit;
        f.cursor = req.Query("cursor");
        DS_ASSIGN_OR_RETURN(auto page, svc.List(f));
        json::array items;
        for (const auto& m : page.items) items.push_back(ToJson(m));
        return JsonResponse(
            200, json::object{{"items", std::move(items)},
                              {"next_cursor", page.next_cursor ? json::value(*page.next_cursor)
                                                               : json::value(nullptr)}});
      }));
  router.Add("GET", "/api/v1/memories/stats", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(auto st, svc.Stats(RequestProject(req)));
               return JsonResponse(200, ToJson(st));
             }));
  router.Add("GET", "/api/v1/memories/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(int64_t id, MemoryId(req));
               DS_ASSIGN_OR_RETURN(auto m, svc.Get(id));
               return JsonResponse(200, ToJson(m));
             }));
  router.Add("PATCH", "/api/v1/memories/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(int64_t id, MemoryId(req));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto patch, memory::DecodeMemoryPatch(body));
               DS_ASSIGN_OR_RETURN(auto m, svc.Update(id, patch));
               return JsonResponse(200, ToJson(m));
             }));
  router.Add("DELETE", "/api/v1/memories/{id}", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(int64_t id, MemoryId(req));
               DS_RETURN_IF_ERROR(svc.Delete(id));
               return NoContent();
             }));
  router.Add("POST", "/api/v1/memories/{id}/forget", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(int64_t id, MemoryId(req));
               DS_ASSIGN_OR_RETURN(auto m, svc.Forget(id));
               return JsonResponse(200, ToJson(m));
             }));
  router.Add("POST", "/api/v1/search", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto q, memory::DecodeSearchQuery(body));
               if (!q.filter.project) q.filter.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(auto r, svc.Search(q));
               return JsonResponse(200, ToJson(r));
             }),
             Access::kRead);
  router.Add("POST", "/api/v1/context", H([&svc](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {"project"}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto q, memory::DecodeContextQuery(body));
               if (!q.filter.project) q.filter.project = RequestProject(req);
               DS_ASSIGN_OR_RETURN(auto r, svc.Context(q));
               return JsonResponse(200, ToJson(r));
             }),
             Access::kRead);
}

}  // namespace ds::api
