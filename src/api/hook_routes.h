// POST /api/v1/hooks/{event}: runs a Claude Code hook inside the server
// (where the vector index is already loaded), for `devstream hook` to relay
// to. The body is a HookRequest (the event JSON plus the project and file
// contents gathered on the assistant's machine); the answer is
// {"output": <hook output object or null>}.
// Thread-safety: the handler may run concurrently.
#pragma once

#include "api/router.h"
#include "hooks/hook_handler.h"

namespace ds::api {

void RegisterHookRoutes(Router& router, hooks::HookHandler& handler);

}  // namespace ds::api
