// Fuzz target: Claude Code hook events. The first line names the event
// ("PostToolUse"; a line naming none picks one by its hash), the rest is the
// event JSON as Claude Code writes it on stdin, with $NAME placeholders
// replaced by fixture ids. It goes the way `devstream hook` sends it:
// PrepareHookRequest, then the relay form (ToJson -> HookRequestFromJson, as
// POST /api/v1/hooks/{event} reads it), then HookHandler::Handle on the fuzz
// world's services. Invariants: a prepared request survives the relay; the
// handler's output, when any, is {"hookSpecificOutput": {"hookEventName":
// <the event>, "additionalContext": <valid UTF-8 string>}}.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/encoding.h"
#include "core/json.h"
#include "fuzz_world.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ds::fuzz::World& world = ds::fuzz::World::Get();
  auto [line, body] = ds::fuzz::SplitFirstLine(ds::fuzz::AsString(data, size));
  const auto& events = ds::hooks::HookEvents();
  std::string event;
  for (auto e : events) {
    if (line == e) event = std::string(e);
  }
  if (event.empty()) event = std::string(events[ds::fuzz::Fnv1a(line) % events.size()]);

  auto prepared = ds::hooks::PrepareHookRequest(event, world.Substitute(std::move(body)));
  if (!prepared.ok()) return 0;
  auto relayed = ds::hooks::HookRequestFromJson(ds::hooks::ToJson(*prepared));
  if (!relayed.ok()) {
    ds::fuzz::Fail("a prepared hook request does not survive the relay: " +
                   relayed.status().message());
  }
  auto out = world.hooks().Handle(*relayed);
  if (!out.ok() || !out->has_value()) return 0;
  const ds::json::object& o = **out;
  const auto* spec = o.if_contains("hookSpecificOutput");
  const auto* obj = spec ? spec->if_object() : nullptr;
  const auto* name = obj ? obj->if_contains("hookEventName") : nullptr;
  const auto* text = obj ? obj->if_contains("additionalContext") : nullptr;
  if (!name || !name->is_string() || name->as_string() != event || !text || !text->is_string() ||
      !ds::IsValidUtf8(text->as_string())) {
    ds::fuzz::Fail("malformed hook output for " + event + ": " + ds::ToJsonString(o));
  }
  return 0;
}
