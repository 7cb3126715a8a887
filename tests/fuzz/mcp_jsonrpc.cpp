// Fuzz target: MCP JSON-RPC messages, one per line as on the stdio
// transport, through McpServer::HandleText with the DevStream tools over the
// fuzz world's services, all lines sharing one SessionState (so initialize,
// notifications/initialized and tools/call can follow each other). $NAME
// placeholders name fixture ids. Invariants: every reply is JSON; a single
// reply is a JSON-RPC 2.0 response (jsonrpc "2.0", an id, exactly one of
// result and error, an integer error code); a batch reply is a non-empty
// array of those; a tools/call result has content and a boolean isError.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_world.h"

namespace {

namespace json = boost::json;

constexpr int kMaxMessages = 8;

void CheckOne(const json::value& reply, std::string_view text) {
  const json::object* o = reply.if_object();
  if (!o) ds::fuzz::Fail("reply is not an object: " + std::string(text));
  const json::value* version = o->if_contains("jsonrpc");
  if (!version || !version->is_string() || version->as_string() != "2.0") {
    ds::fuzz::Fail("reply without jsonrpc 2.0: " + json::serialize(reply));
  }
  const json::value* id = o->if_contains("id");
  if (!id || !(id->is_string() || id->is_number() || id->is_null())) {
    ds::fuzz::Fail("reply without a valid id: " + json::serialize(reply));
  }
  const json::value* result = o->if_contains("result");
  const json::value* error = o->if_contains("error");
  if ((result != nullptr) == (error != nullptr)) {
    ds::fuzz::Fail("reply needs exactly one of result/error: " + json::serialize(reply));
  }
  if (error) {
    const json::object* e = error->if_object();
    if (!e || !e->contains("code") || !e->at("code").is_int64() || !e->contains("message") ||
        !e->at("message").is_string()) {
      ds::fuzz::Fail("malformed JSON-RPC error: " + json::serialize(reply));
    }
    return;
  }
  if (!result->is_object()) ds::fuzz::Fail("result is not an object: " + json::serialize(reply));
  const json::object& r = result->as_object();
  if (const json::value* is_error = r.if_contains("isError")) {
    const json::value* content = r.if_contains("content");
    if (!is_error->is_bool() || !content || !content->is_array()) {
      ds::fuzz::Fail("malformed tool result: " + json::serialize(reply));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ds::fuzz::World& world = ds::fuzz::World::Get();
  std::string input = world.Substitute(ds::fuzz::AsString(data, size));
  ds::mcp::SessionState session;
  ds::mcp::CallScope scope;
  scope.default_project = world.fixtures().project_name;
  std::string_view rest(input);
  for (int i = 0; i < kMaxMessages && !rest.empty(); ++i) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    std::optional<std::string> reply = world.mcp().HandleText(line, session, scope);
    if (!reply) continue;
    boost::system::error_code ec;
    json::value v = json::parse(*reply, ec);
    if (ec) ds::fuzz::Fail("reply is not JSON: " + *reply);
    if (v.is_array()) {
      if (v.as_array().empty()) ds::fuzz::Fail("empty batch reply");
      for (const auto& one : v.as_array()) CheckOne(one, *reply);
    } else {
      CheckOne(v, *reply);
    }
  }
  return 0;
}
