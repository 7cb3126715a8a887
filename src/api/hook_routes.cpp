#include "api/hook_routes.h"

#include "api/handler_util.h"

namespace ds::api {

void RegisterHookRoutes(Router& router, hooks::HookHandler& handler) {
  router.Add("POST", "/api/v1/hooks/{event}", H([&handler](Request& req) -> Result<Response> {
               DS_RETURN_IF_ERROR(CheckQuery(req, {}));
               DS_ASSIGN_OR_RETURN(json::value body, ReadJsonBody(req));
               DS_ASSIGN_OR_RETURN(auto hook, hooks::HookRequestFromJson(body));
               if (hook.project.empty()) hook.project = RequestProject(req).value_or("");
               if (hook.event != req.params["event"]) {
                 return Status::InvalidArgument("hook.event (" + hook.event +
                                                ") does not match the URL (" + req.params["event"] +
                                                ")")
                     .WithDetail("field", "event");
               }
               DS_ASSIGN_OR_RETURN(auto output, handler.Handle(hook));
               json::value out = nullptr;
               if (output) out = std::move(*output);
               return JsonResponse(200, json::object{{"output", std::move(out)}});
             }));
}

}  // namespace ds::api
