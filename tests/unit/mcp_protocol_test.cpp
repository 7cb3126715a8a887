// McpServer (src/mcp/protocol.h), the JSON-RPC 2.0 layer of the MCP server:
//  - with a small fake ToolRegistry: parse errors (-32700, id null), invalid
//    requests (-32600), unknown methods (-32601 with the request's id),
//    notifications and responses (no reply), batches, initialize version
//    negotiation, tools/list cursor pagination (page_size 3), the 2025-03-26
//    downgrade (no outputSchema, structuredContent as a JSON text block),
//    tools/call errors (-32602 for unknown tools and non-object arguments;
//    failing or throwing tools become isError results), hostile nesting;
//  - with the real DevStreamTools over OpenServices on a temp database: the
//    ten tools, their schemas (every $ref inlined, type object), pagination
//    over them and a few calls;
//  - engine::StandardJobKinds() equals the OpenAPI document's JobKind enum.
#include "mcp/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/rest_api.h"
#include "app/services.h"
#include "core/encoding.h"
#include "core/json.h"
#include "core/signing.h"
#include "engine/job_handlers.h"
#include "mcp/devstream_tools.h"
#include "test_util.h"

namespace ds::mcp {
namespace {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;

json::value Parse(std::string_view text) {
  auto v = ParseJson(text, 256);
  EXPECT_TRUE(v.ok()) << v.status().ToString() << ": " << text;
  return v.ok() ? *v : json::value(nullptr);
}

const json::object& Obj(const json::value& v) {
  static const json::object empty;
  EXPECT_TRUE(v.is_object()) << ToJsonString(v);
  return v.is_object() ? v.as_object() : empty;
}

// The error code of a JSON-RPC error response (0 when it is not one).
int64_t ErrorCode(const json::value& reply) {
  if (!reply.is_object()) return 0;
  const auto* e = reply.as_object().if_contains("error");
  if (!e || !e->is_object()) return 0;
  const auto* c = e->as_object().if_contains("code");
  return c && c->is_int64() ? c->as_int64() : 0;
}

std::string ErrorMessage(const json::value& reply) {
  const auto* e = reply.is_object() ? reply.as_object().if_contains("error") : nullptr;
  const auto* m = e && e->is_object() ? e->as_object().if_contains("message") : nullptr;
  return m && m->is_string() ? std::string(m->as_string()) : "";
}

// A reference into `reply`: keep `reply` alive (name it) while using it.
const json::object& ResultOf(const json::value& reply) {
  static const json::object empty;
  const auto* r = reply.is_object() ? reply.as_object().if_contains("result") : nullptr;
  EXPECT_TRUE(r && r->is_object()) << "not a result: " << ToJsonString(reply);
  return r && r->is_object() ? r->as_object() : empty;
}

std::string ResultText(const json::object& result, size_t block = 0) {
  const auto* c = result.if_contains("content");
  if (!c || !c->is_array() || c->as_array().size() <= block) return "";
  const auto& b = c->as_array()[block];
  const auto* t = b.is_object() ? b.as_object().if_contains("text") : nullptr;
  return t && t->is_string() ? std::string(t->as_string()) : "";
}

json::object Schema(std::initializer_list<const char*> required) {
  json::array req;
  for (const char* r : required) req.emplace_back(r);
  json::object s{{"type", "object"}, {"properties", json::object{}}};
  if (!req.empty()) s["required"] = std::move(req);
  return s;
}

// "echo" answers its arguments and what it knows about the caller; "missing"
// fails with NotFound; "bad_args" with InvalidArgument; "boom" throws;
// filler_1..filler_3 pad the registry to 7 tools for pagination.
ToolRegistry FakeTools() {
  ToolRegistry r;
  r.Add(Tool{"echo", "Echo", "Answers its arguments.", Schema({}), Schema({"arguments"}), true,
             [](const json::object& args, const CallContext& ctx) -> Result<ToolResult> {
               return ToolResult{"echoed", json::object{{"arguments", args},
                                                        {"project", ctx.default_project},
                                                        {"agent", ctx.agent},
                                                        {"version", ctx.session.protocol_version}}};
             }});
  r.Add(Tool{"missing", "Missing", "Always NotFound.", Schema({}), Schema({}), true,
             [](const json::object&, const CallContext&) -> Result<ToolResult> {
               return Status::NotFound("thing tsk_x does not exist");
             }});
  r.Add(Tool{"bad_args", "Bad args", "Always InvalidArgument.", Schema({}), Schema({}), false,
             [](const json::object&, const CallContext&) -> Result<ToolResult> {
               return Status::InvalidArgument("arguments.limit: must be an integer");
             }});
  r.Add(Tool{"boom", "Boom", "Throws.", Schema({}), Schema({}), false,
             [](const json::object&, const CallContext&) -> Result<ToolResult> {
               throw std::runtime_error("kaboom");
             }});
  for (int i = 1; i <= 3; ++i) {
    r.Add(Tool{"filler_" + std::to_string(i), "Filler", "Pads the list.", Schema({}), Schema({}),
               true, [](const json::object&, const CallContext&) -> Result<ToolResult> {
                 return ToolResult{"ok", json::object{}};
               }});
  }
  return r;
}

ServerInfo FakeInfo() {
  ServerInfo info;
  info.version = "9.9.9-test";
  info.instructions = "Use the echo tool.";
  info.page_size = 3;
  return info;
}

std::string Request(const std::string& id, const std::string& method,
                    const std::string& params = "") {
  std::string s = R"({"jsonrpc":"2.0","id":)" + id + R"(,"method":")" + method + "\"";
  if (!params.empty()) s += R"(,"params":)" + params;
  return s + "}";
}

std::string Initialize(const std::string& version, const std::string& client = "unit-client") {
  return Request("1", "initialize",
                 R"({"protocolVersion":")" + version +
                     R"(","capabilities":{},"clientInfo":{"name":")" + client +
                     R"(","version":"1.0"}})");
}

class McpFakeServerTest : public ::testing::Test {
 protected:
  McpFakeServerTest() : tools_(FakeTools()), server_(tools_, FakeInfo()) {}

  // The reply to `text` in session_, which must exist.
  json::value Reply(std::string_view text, const std::string& project = "") {
    auto r = server_.HandleText(text, session_, mcp::CallScope{project, {}});
    EXPECT_TRUE(r.has_value()) << "no reply to " << text;
    return r ? Parse(*r) : json::value(nullptr);
  }
  std::optional<std::string> MaybeReply(std::string_view text) {
    return server_.HandleText(text, session_);
  }
  void Init(const std::string& version) {
    json::value r = Reply(Initialize(version));
    ASSERT_EQ(ResultOf(r).at("protocolVersion").as_string(), version);
    EXPECT_FALSE(
        server_.HandleText(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", session_));
  }
  json::value CallTool(const std::string& name, const std::string& arguments = "{}",
                       const std::string& project = "") {
    return Reply(
        Request("5", "tools/call", R"({"name":")" + name + R"(","arguments":)" + arguments + "}"),
        project);
  }

  ToolRegistry tools_;
  McpServer server_;
  SessionState session_;
};

// ---- JSON-RPC framing ----

TEST_F(McpFakeServerTest, ParseErrorHasNullId) {
  for (std::string_view bad : {"{bad", "", "   ", "[1,", R"({"jsonrpc":"2.0","id":1,)", "nul"}) {
    json::value r = Reply(bad);
    EXPECT_EQ(ErrorCode(r), kParseError) << bad;
    ASSERT_TRUE(r.is_object());
    EXPECT_TRUE(r.as_object().at("id").is_null()) << bad;
    EXPECT_EQ(r.as_object().at("jsonrpc").as_string(), "2.0");
  }
}

TEST_F(McpFakeServerTest, InvalidRequestShapes) {
  struct Case {
    std::string text;
    json::value id;  // expected reply id
  };
  const std::vector<Case> cases = {
      {"42", nullptr},
      {R"("ping")", nullptr},
      {"true", nullptr},
      {"null", nullptr},
      {R"({"id":1,"method":"ping"})", 1},                              // no jsonrpc
      {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", 1},              // wrong jsonrpc
      {R"({"jsonrpc":2.0,"id":1,"method":"ping"})", 1},                // jsonrpc not a string
      {R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", nullptr},      // fractional id
      {R"({"jsonrpc":"2.0","id":{"a":1},"method":"ping"})", nullptr},  // object id
      {R"({"jsonrpc":"2.0","id":[1],"method":"ping"})", nullptr},      // array id
      {R"({"jsonrpc":"2.0","id":true,"method":"ping"})", nullptr},     // boolean id
      {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", nullptr},     // null id
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"})", 1},
      {R"({"jsonrpc":"2.0","id":"a","method":"ping","params":5})", "a"},
      {R"({"jsonrpc":"2.0","id":2,"method":"ping","params":null})", 2},
      {R"({"jsonrpc":"2.0","id":1,"method":7})", 1},  // method not a string
      {R"({"jsonrpc":"2.0","id":1})", 1},             // no method, no result
  };
  for (const auto& c : cases) {
    json::value r = Reply(c.text);
    EXPECT_EQ(ErrorCode(r), kInvalidRequest) << c.text << " -> " << ToJsonString(r);
    if (r.is_object()) {
      EXPECT_EQ(r.as_object().at("id"), c.id) << c.text;
      EXPECT_FALSE(r.as_object().contains("result")) << c.text;
    }
  }
}

TEST_F(McpFakeServerTest, UnknownMethodKeepsTheId) {
  json::value r = Reply(Request("7", "resources/list"));
  EXPECT_EQ(ErrorCode(r), kMethodNotFound);
  EXPECT_EQ(Obj(r).at("id"), json::value(7));
  EXPECT_NE(ErrorMessage(r).find("resources/list"), std::string::npos);
  r = Reply(Request(R"("req-abc")", "prompts/get", "{}"));
  EXPECT_EQ(ErrorCode(r), kMethodNotFound);
  EXPECT_EQ(Obj(r).at("id").as_string(), "req-abc");
  // Big unsigned ids are ids too.
  r = Reply(Request("18446744073709551615", "nope"));
  EXPECT_EQ(ErrorCode(r), kMethodNotFound);
  EXPECT_EQ(Obj(r).at("id"), json::value(18446744073709551615ULL));
}

TEST_F(McpFakeServerTest, PingAnswersAnEmptyResult) {
  json::value r = Reply(Request("3", "ping"));
  EXPECT_TRUE(ResultOf(r).empty());
  EXPECT_EQ(Obj(r).at("id"), json::value(3));
  r = Reply(Request("4", "ping", "[]"));  // array params are allowed
  EXPECT_TRUE(ResultOf(r).empty());
}

TEST_F(McpFakeServerTest, NotificationsGetNoReply) {
  EXPECT_FALSE(session_.initialized);
  EXPECT_FALSE(MaybeReply(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  EXPECT_TRUE(session_.initialized);
  EXPECT_FALSE(MaybeReply(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})"));
  EXPECT_FALSE(MaybeReply(R"({"jsonrpc":"2.0","method":"notifications/whatever"})"));
  EXPECT_FALSE(MaybeReply(R"({"jsonrpc":"2.0","method":"tools/call","params":{"name":"boom"}})"))
      << "a request without id is a notification, even for a known method";
}

TEST_F(McpFakeServerTest, ResponsesGetNoReply) {
  EXPECT_FALSE(MaybeReply(R"({"jsonrpc":"2.0","id":5,"result":{}})"));
  EXPECT_FALSE(MaybeReply(R"({"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}})"));
}

TEST_F(McpFakeServerTest, Batches) {
  json::value r = Reply(
      R"([{"jsonrpc":"2.0","id":1,"method":"ping"},
          {"jsonrpc":"2.0","method":"notifications/initialized"},
          {"jsonrpc":"2.0","id":"two","method":"nope"},
          {"jsonrpc":"2.0","id":9,"result":{}},
          17])");
  ASSERT_TRUE(r.is_array()) << ToJsonString(r);
  const auto& a = r.as_array();
  ASSERT_EQ(a.size(), 3u) << ToJsonString(r);
  EXPECT_EQ(a[0].as_object().at("id"), json::value(1));
  EXPECT_TRUE(a[0].as_object().contains("result"));
  EXPECT_EQ(a[1].as_object().at("id").as_string(), "two");
  EXPECT_EQ(ErrorCode(a[1]), kMethodNotFound);
  EXPECT_EQ(ErrorCode(a[2]), kInvalidRequest);
  EXPECT_TRUE(a[2].as_object().at("id").is_null());
  EXPECT_TRUE(session_.initialized);

  json::value empty = Reply("[]");
  ASSERT_TRUE(empty.is_object()) << "an empty batch is answered with one error, not an array";
  EXPECT_EQ(ErrorCode(empty), kInvalidRequest);
  EXPECT_TRUE(empty.as_object().at("id").is_null());

  EXPECT_FALSE(MaybeReply(R"([{"jsonrpc":"2.0","method":"notifications/initialized"},
                              {"jsonrpc":"2.0","id":3,"result":{}}])"))
      << "a batch of notifications and responses gets no reply";

  // Handle() on a parsed batch behaves the same.
  SessionState s;
  auto direct = server_.Handle(Parse(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])"), s);
  ASSERT_TRUE(direct && direct->is_array());
  EXPECT_EQ(direct->as_array().size(), 1u);
}

TEST_F(McpFakeServerTest, DeepNestingIsAParseErrorNotACrash) {
  for (const std::string& text :
       {std::string(100000, '['), std::string(100000, '[') + std::string(100000, ']'), [] {
          std::string s;
          for (int i = 0; i < 50000; ++i) s += R"({"a":)";
          return s + "1" + std::string(50000, '}');
        }()}) {
    json::value r = Reply(text);
    EXPECT_EQ(ErrorCode(r), kParseError);
    EXPECT_TRUE(Obj(r).at("id").is_null());
  }
  // The server goes on answering.
  EXPECT_TRUE(MaybeReply(Request("1", "ping")));
}

// ---- lifecycle ----

TEST(McpVersions, SupportedVersionsNewestFirst) {
  const auto& v = SupportedProtocolVersions();
  EXPECT_EQ(v, (std::vector<std::string>{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}));
  EXPECT_FALSE(VersionHasSessions("2024-11-05"));
  EXPECT_TRUE(VersionHasSessions("2025-03-26"));
  EXPECT_TRUE(VersionHasSessions("2025-06-18"));
  EXPECT_TRUE(VersionHasSessions("2025-11-25"));
}

TEST_F(McpFakeServerTest, InitializeEchoesEachSupportedVersion) {
  for (const std::string& version : SupportedProtocolVersions()) {
    SessionState s;
    auto text = server_.HandleText(Initialize(version, "client-" + version), s);
    ASSERT_TRUE(text);
    json::value r = Parse(*text);
    const json::object& result = ResultOf(r);
    EXPECT_EQ(result.at("protocolVersion").as_string(), version);
    EXPECT_EQ(s.protocol_version, version);
    EXPECT_EQ(s.client_name, "client-" + version);
    EXPECT_EQ(s.client_version, "1.0");
    EXPECT_FALSE(s.initialized) << "initialized only after notifications/initialized";
    const auto& info = result.at("serverInfo").as_object();
    EXPECT_EQ(info.at("name").as_string(), "devstream");
    EXPECT_EQ(info.at("version").as_string(), "9.9.9-test");
    EXPECT_TRUE(result.at("capabilities").as_object().at("tools").is_object());
    EXPECT_EQ(result.at("instructions").as_string(), "Use the echo tool.");
  }
}

TEST_F(McpFakeServerTest, InitializeWithAnUnknownVersionAnswersTheNewest) {
  for (const char* v : {"2099-01-01", "2024-10-07", "1.0", ""}) {
    SessionState s;
    auto text = server_.HandleText(Initialize(v), s);
    ASSERT_TRUE(text);
    EXPECT_EQ(ResultOf(Parse(*text)).at("protocolVersion").as_string(), "2025-11-25") << v;
    EXPECT_EQ(s.protocol_version, "2025-11-25");
  }
}

TEST_F(McpFakeServerTest, InitializeNeedsAProtocolVersion) {
  for (const std::string& params :
       {std::string(R"({"capabilities":{}})"), std::string(R"({"protocolVersion":20250618})"),
        std::string(R"({"protocolVersion":null})"), std::string("[]")}) {
    json::value r = Reply(Request("1", "initialize", params));
    EXPECT_EQ(ErrorCode(r), kInvalidParams) << params;
    EXPECT_EQ(Obj(r).at("id"), json::value(1));
  }
  EXPECT_EQ(ErrorCode(Reply(Request("1", "initialize"))), kInvalidParams);
  EXPECT_TRUE(session_.protocol_version.empty()) << "a failed initialize negotiates nothing";
}

TEST(McpServerStatic, IsInitialize) {
  EXPECT_TRUE(McpServer::IsInitialize(Parse(R"({"jsonrpc":"2.0","id":1,"method":"initialize"})")));
  EXPECT_FALSE(McpServer::IsInitialize(Parse(R"({"jsonrpc":"2.0","method":"initialize"})")));
  EXPECT_FALSE(McpServer::IsInitialize(Parse(R"({"jsonrpc":"2.0","id":1,"method":"ping"})")));
  EXPECT_FALSE(
      McpServer::IsInitialize(Parse(R"([{"jsonrpc":"2.0","id":1,"method":"initialize"}])")));
}

// ---- tools/list ----

TEST_F(McpFakeServerTest, ToolsListPagination) {
  Init("2025-11-25");
  std::vector<std::string> names;
  std::vector<size_t> page_sizes;
  json::value cursor = nullptr;
  for (int page = 0; page < 10; ++page) {
    std::string params = cursor.is_null() ? "{}" : R"({"cursor":)" + ToJsonString(cursor) + "}";
    json::value r = Reply(Request(std::to_string(100 + page), "tools/list", params));
    const json::object& result = ResultOf(r);
    const auto& list = result.at("tools").as_array();
    page_sizes.push_back(list.size());
    for (const auto& t : list) {
      const auto& o = t.as_object();
      names.emplace_back(o.at("name").as_string());
      EXPECT_TRUE(o.at("inputSchema").is_object());
      EXPECT_TRUE(o.at("outputSchema").is_object());
      EXPECT_TRUE(o.at("annotations").as_object().at("readOnlyHint").is_bool());
    }
    const auto* next = result.if_contains("nextCursor");
    if (!next) break;
    ASSERT_TRUE(next->is_string());
    cursor = *next;
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{3, 3, 1}));
  std::vector<std::string> expected;
  for (const auto& t : tools_.tools()) expected.push_back(t.name);
  EXPECT_EQ(names, expected) << "every tool once, in registry order";

  // A null cursor is the first page.
  json::value first = Reply(Request("1", "tools/list", R"({"cursor":null})"));
  EXPECT_EQ(ResultOf(first).at("tools").as_array().size(), 3u);
  // No params at all: the first page too.
  EXPECT_EQ(ResultOf(Reply(Request("1", "tools/list"))).at("tools").as_array().size(), 3u);
}

TEST_F(McpFakeServerTest, ToolsListRejectsBadCursors) {
  for (const std::string& cursor :
       {std::string(R"("garbage!")"), std::string("5"), std::string(R"({"offset":3})"),
        ToJsonString(json::value(Base64UrlEncode("tools:99"))),
        ToJsonString(json::value(Base64UrlEncode("tools:7"))),  // one past the end
        ToJsonString(json::value(Base64UrlEncode("tools:-1"))),
        ToJsonString(json::value(Base64UrlEncode("tools:3x"))),
        ToJsonString(json::value(Base64UrlEncode("plans:3"))), std::string(R"("")")}) {
    json::value r = Reply(Request("11", "tools/list", R"({"cursor":)" + cursor + "}"));
    EXPECT_EQ(ErrorCode(r), kInvalidParams) << cursor << " -> " << ToJsonString(r);
    EXPECT_EQ(Obj(r).at("id"), json::value(11));
  }
  // A cursor of ours works; the same position unsigned does not.
  json::value ok =
      Reply(Request("12", "tools/list",
                    R"({"cursor":)" + ToJsonString(json::value(EncodeCursor("tools:6"))) + "}"));
  json::value unsigned_cursor =
      Reply(Request("13", "tools/list",
                    R"({"cursor":)" + ToJsonString(json::value(Base64UrlEncode("tools:6"))) + "}"));
  EXPECT_EQ(ErrorCode(unsigned_cursor), kInvalidParams);
  EXPECT_EQ(ResultOf(ok).at("tools").as_array().size(), 1u);
}

TEST_F(McpFakeServerTest, OlderVersionsGetNoOutputSchemaAndJsonText) {
  Init("2025-03-26");
  json::value list = Reply(Request("2", "tools/list"));
  for (const auto& t : ResultOf(list).at("tools").as_array()) {
    EXPECT_FALSE(t.as_object().contains("outputSchema")) << ToJsonString(t);
    EXPECT_TRUE(t.as_object().contains("inputSchema"));
  }
  json::value r = CallTool("echo", R"({"x":1})", "proj");
  const json::object& result = ResultOf(r);
  EXPECT_FALSE(result.contains("structuredContent"));
  EXPECT_FALSE(result.at("isError").as_bool());
  const auto& content = result.at("content").as_array();
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(ResultText(result, 0), "echoed");
  json::value data = Parse(ResultText(result, 1));
  EXPECT_EQ(data.as_object().at("arguments"), Parse(R"({"x":1})"));
  EXPECT_EQ(data.as_object().at("project").as_string(), "proj");
  EXPECT_EQ(data.as_object().at("version").as_string(), "2025-03-26");

  // 2024-11-05 likewise.
  SessionState old;
  ASSERT_TRUE(server_.HandleText(Initialize("2024-11-05"), old));
  auto text = server_.HandleText(Request("3", "tools/call", R"({"name":"echo"})"), old);
  ASSERT_TRUE(text);
  EXPECT_FALSE(ResultOf(Parse(*text)).contains("structuredContent"));
}

TEST_F(McpFakeServerTest, NewerVersionsGetStructuredContent) {
  for (const char* v : {"2025-06-18", "2025-11-25"}) {
    SessionState s;
    ASSERT_TRUE(server_.HandleText(Initialize(v), s));
    auto list = server_.HandleText(Request("2", "tools/list"), s);
    ASSERT_TRUE(list);
    json::value listed = Parse(*list);
    for (const auto& t : ResultOf(listed).at("tools").as_array()) {
      EXPECT_TRUE(t.as_object().at("outputSchema").is_object()) << v;
    }
    auto call = server_.HandleText(Request("3", "tools/call", R"({"name":"echo"})"), s);
    ASSERT_TRUE(call);
    json::value reply = Parse(*call);
    const json::object& result = ResultOf(reply);
    EXPECT_TRUE(result.at("structuredContent").is_object()) << v;
    EXPECT_EQ(result.at("content").as_array().size(), 1u) << v;
  }
  // Before initialize (stateless HTTP): structured, like the newest version.
  SessionState none;
  auto call = server_.HandleText(Request("4", "tools/call", R"({"name":"echo"})"), none);
  ASSERT_TRUE(call);
  EXPECT_TRUE(ResultOf(Parse(*call)).contains("structuredContent"));
}

// ---- tools/call ----

TEST_F(McpFakeServerTest, ARefusedCallIsAToolErrorAndDoesNotRun) {
  SessionState s;
  ASSERT_TRUE(server_.HandleText(Initialize("2025-11-25", "claude-code"), s));
  std::string seen_tool;
  CallScope scope{"", [&](const Tool& tool, const json::object& args) {
                    seen_tool = tool.name;
                    EXPECT_TRUE(args.contains("b"));
                    return Status::Forbidden("this tool needs write");
                  }};
  auto text = server_.HandleText(
      Request("9", "tools/call", R"({"name":"echo","arguments":{"b":"c"}})"), s, scope);
  ASSERT_TRUE(text);
  json::value reply = Parse(*text);
  EXPECT_EQ(seen_tool, "echo");
  EXPECT_TRUE(reply.at("result").at("isError").as_bool());
  EXPECT_NE(ToJsonString(reply).find("needs write"), std::string::npos);
  EXPECT_EQ(ToJsonString(reply).find("\"b\":\"c\""), std::string::npos) << "the tool ran";
}

TEST_F(McpFakeServerTest, CallPassesArgumentsProjectAndAgent) {
  SessionState s;
  ASSERT_TRUE(server_.HandleText(Initialize("2025-11-25", "claude-code"), s));
  auto text = server_.HandleText(
      Request("9", "tools/call", R"({"name":"echo","arguments":{"a":[1,2],"b":"c"}})"), s,
      CallScope{"myproj", {}});
  ASSERT_TRUE(text);
  json::value reply = Parse(*text);
  const json::object& result = ResultOf(reply);
  EXPECT_FALSE(result.at("isError").as_bool());
  const auto& sc = result.at("structuredContent").as_object();
  EXPECT_EQ(sc.at("arguments"), Parse(R"({"a":[1,2],"b":"c"})"));
  EXPECT_EQ(sc.at("project").as_string(), "myproj");
  EXPECT_EQ(sc.at("agent").as_string(), "claude-code");
  EXPECT_EQ(ResultText(result), "echoed");

  // Without a client name the agent is "mcp"; missing or null arguments are {}.
  for (const char* params : {R"({"name":"echo"})", R"({"name":"echo","arguments":null})"}) {
    json::value r = Reply(Request("10", "tools/call", params));
    const auto& sc2 = ResultOf(r).at("structuredContent").as_object();
    EXPECT_EQ(sc2.at("agent").as_string(), "mcp");
    EXPECT_TRUE(sc2.at("arguments").as_object().empty());
  }
}

TEST_F(McpFakeServerTest, UnknownToolIsInvalidParams) {
  json::value r = CallTool("no_such_tool");
  EXPECT_EQ(ErrorCode(r), kInvalidParams);
  EXPECT_EQ(Obj(r).at("id"), json::value(5));
  EXPECT_NE(ErrorMessage(r).find("no_such_tool"), std::string::npos);
  EXPECT_NE(ErrorMessage(r).find("echo"), std::string::npos) << "lists the tools";
}

TEST_F(McpFakeServerTest, MalformedCallParamsAreInvalidParams) {
  for (const std::string& params :
       {std::string(R"({"name":"echo","arguments":"x"})"),
        std::string(R"({"name":"echo","arguments":[1]})"),
        std::string(R"({"name":"echo","arguments":5})"), std::string(R"({"arguments":{}})"),
        std::string(R"({"name":7})"), std::string("[]")}) {
    json::value r = Reply(Request("6", "tools/call", params));
    EXPECT_EQ(ErrorCode(r), kInvalidParams) << params << " -> " << ToJsonString(r);
    EXPECT_EQ(Obj(r).at("id"), json::value(6));
  }
  EXPECT_EQ(ErrorCode(Reply(Request("6", "tools/call"))), kInvalidParams);
}

TEST_F(McpFakeServerTest, FailingToolsAnswerIsErrorResults) {
  json::value r = CallTool("boom");
  ASSERT_FALSE(Obj(r).contains("error")) << "a throwing tool is not a protocol error";
  const json::object& thrown = ResultOf(r);
  EXPECT_TRUE(thrown.at("isError").as_bool());
  EXPECT_FALSE(thrown.contains("structuredContent"));
  EXPECT_NE(ResultText(thrown).find("kaboom"), std::string::npos) << ResultText(thrown);
  EXPECT_NE(ResultText(thrown).find("boom"), std::string::npos);

  json::value missing = CallTool("missing");
  const json::object& not_found = ResultOf(missing);
  EXPECT_TRUE(not_found.at("isError").as_bool());
  std::string text = ResultText(not_found);
  EXPECT_EQ(text.rfind("Error: thing tsk_x does not exist", 0), 0u) << text;
  EXPECT_NE(text.find("devstream_list_tasks"), std::string::npos) << "says how to find ids";

  json::value bad_args = CallTool("bad_args");
  const json::object& invalid = ResultOf(bad_args);
  EXPECT_TRUE(invalid.at("isError").as_bool());
  EXPECT_NE(ResultText(invalid).find("arguments.limit"), std::string::npos);
  EXPECT_NE(ResultText(invalid).find("inputSchema"), std::string::npos);
}

// ---- the real tools ----

bool ContainsRef(const json::value& v) {
  if (v.is_object()) {
    for (const auto& [k, x] : v.as_object()) {
      if (k == "$ref" || ContainsRef(x)) return true;
    }
  } else if (v.is_array()) {
    for (const auto& x : v.as_array()) {
      if (ContainsRef(x)) return true;
    }
  }
  return false;
}

class McpDevStreamToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ds::testing::TempDir();
    auto s = app::OpenServices(dir_ + "/mcp.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sv_ = std::move(s).value();
    ASSERT_TRUE(sv_->memory->LoadIndex().ok());
    services_ =
        std::make_unique<ToolServices>(ToolServices{*sv_->tasks, *sv_->memory, *sv_->workflow});
    tools_ = std::make_unique<ToolRegistry>(DevStreamTools(*services_));
    ServerInfo info;
    info.version = "test";
    info.page_size = 3;
    server_ = std::make_unique<McpServer>(*tools_, info);
  }
  void TearDown() override {
    server_.reset();
    tools_.reset();
    services_.reset();
    sv_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  json::value Call(SessionState& s, const std::string& name, const std::string& arguments) {
    auto text = server_->HandleText(
        Request("1", "tools/call", R"({"name":")" + name + R"(","arguments":)" + arguments + "}"),
        s, CallScope{"unit", {}});
    EXPECT_TRUE(text);
    return text ? Parse(*text) : json::value(nullptr);
  }

  std::string dir_;
  std::unique_ptr<app::Services> sv_;
  std::unique_ptr<ToolServices> services_;
  std::unique_ptr<ToolRegistry> tools_;
  std::unique_ptr<McpServer> server_;
};

TEST_F(McpDevStreamToolsTest, TheTenToolsWithStandaloneObjectSchemas) {
  const std::set<std::string> expected = {"devstream_list_tasks",   "devstream_create_task",
                                          "devstream_update_task",  "devstream_list_plans",
                                          "devstream_store_memory", "devstream_search_memory",
                                          "devstream_create_plan",  "devstream_next_task",
                                          "devstream_get_context",  "devstream_forget_memory"};
  std::set<std::string> names;
  for (const Tool& t : tools_->tools()) {
    names.insert(t.name);
    SCOPED_TRACE(t.name);
    EXPECT_FALSE(ContainsRef(t.input_schema)) << ToJsonString(t.input_schema);
    EXPECT_FALSE(ContainsRef(t.output_schema)) << ToJsonString(t.output_schema);
    ASSERT_TRUE(t.input_schema.contains("type"));
    EXPECT_EQ(t.input_schema.at("type"), json::value("object"));
    ASSERT_TRUE(t.output_schema.contains("type"));
    EXPECT_EQ(t.output_schema.at("type"), json::value("object"));
    EXPECT_FALSE(t.title.empty());
    EXPECT_GT(t.description.size(), 20u);
    EXPECT_TRUE(t.run);
  }
  EXPECT_EQ(names, expected);
  EXPECT_EQ(tools_->tools().size(), 10u);
}

TEST_F(McpDevStreamToolsTest, ToolsListWalksAllTenOnce) {
  SessionState s;
  ASSERT_TRUE(server_->HandleText(Initialize("2025-11-25"), s));
  std::vector<std::string> names;
  std::string params = "{}";
  for (int page = 0; page < 20; ++page) {
    auto text = server_->HandleText(Request("2", "tools/list", params), s);
    ASSERT_TRUE(text);
    json::value r = Parse(*text);
    const json::object& result = ResultOf(r);
    for (const auto& t : result.at("tools").as_array()) {
      const auto& o = t.as_object();
      names.emplace_back(o.at("name").as_string());
      EXPECT_FALSE(ContainsRef(o.at("inputSchema")));
      EXPECT_FALSE(ContainsRef(o.at("outputSchema")));
      EXPECT_EQ(o.at("inputSchema").as_object().at("type"), json::value("object"));
      EXPECT_EQ(o.at("outputSchema").as_object().at("type"), json::value("object"));
    }
    const auto* next = result.if_contains("nextCursor");
    if (!next) break;
    params = R"({"cursor":)" + ToJsonString(*next) + "}";
  }
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 10u);
}

TEST_F(McpDevStreamToolsTest, StoreSearchAndErrors) {
  SessionState s;
  ASSERT_TRUE(server_->HandleText(Initialize("2025-11-25", "unit-agent"), s));
  json::value stored = Call(s, "devstream_store_memory",
                            R"({"content":"The cache uses LRU eviction with a 64 MiB cap.",
                                "content_type":"decision"})");
  const json::object& sr = ResultOf(stored);
  ASSERT_FALSE(sr.at("isError").as_bool()) << ResultText(sr);
  int64_t id = sr.at("structuredContent").as_object().at("id").as_int64();
  EXPECT_EQ(sr.at("structuredContent").as_object().at("source").as_string(), "mcp");

  json::value found = Call(s, "devstream_search_memory", R"({"query":"LRU cache eviction"})");
  const json::object& fr = ResultOf(found);
  ASSERT_FALSE(fr.at("isError").as_bool()) << ResultText(fr);
  const auto& hits = fr.at("structuredContent").as_object().at("results").as_array();
  EXPECT_TRUE(std::any_of(hits.begin(), hits.end(), [&](const json::value& h) {
    return h.as_object().at("id").as_int64() == id;
  }));

  // The same in 2025-03-26: the data as a JSON text block.
  SessionState old;
  ASSERT_TRUE(server_->HandleText(Initialize("2025-03-26"), old));
  json::value old_reply = Call(old, "devstream_search_memory", R"({"query":"LRU"})");
  const json::object& oldr = ResultOf(old_reply);
  EXPECT_FALSE(oldr.contains("structuredContent"));
  json::value data = Parse(ResultText(oldr, 1));
  EXPECT_TRUE(data.as_object().at("results").is_array());

  // Bad arguments: isError results naming the field.
  struct Bad {
    const char* tool;
    const char* args;
    const char* mention;
  };
  for (const Bad& b : {Bad{"devstream_store_memory", R"({"content_type":"decision"})", "content"},
                       Bad{"devstream_search_memory", R"({"query":5})", "query"},
                       Bad{"devstream_forget_memory", R"({"memory_id":"x"})", "memory_id"},
                       Bad{"devstream_forget_memory", R"({"memory_id":99999})", "99999"},
                       Bad{"devstream_create_task", R"({"title":"t"})", "phase_id"},
                       Bad{"devstream_update_task", R"({"status":"completed"})", "task_id"},
                       Bad{"devstream_list_tasks", R"({"limit":0})", "limit"},
                       Bad{"devstream_next_task", R"({"lease_seconds":"x"})", "lease_seconds"}}) {
    json::value reply = Call(s, b.tool, b.args);
    const json::object& r = ResultOf(reply);
    EXPECT_TRUE(r.at("isError").as_bool()) << b.tool << " " << b.args;
    EXPECT_NE(ResultText(r).find(b.mention), std::string::npos)
        << b.tool << " " << b.args << ": " << ResultText(r);
  }

  // Nothing to claim: task null.
  json::value none_reply = Call(s, "devstream_next_task", "{}");
  const json::object& none = ResultOf(none_reply);
  ASSERT_FALSE(none.at("isError").as_bool()) << ResultText(none);
  EXPECT_TRUE(none.at("structuredContent").as_object().at("task").is_null());
}

// ---- OpenAPI JobKind ----

TEST(OpenApiJobKinds, EqualStandardJobKinds) {
  auto doc = ParseJson(api::OpenApiDocument(), 256);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const json::value* kind = nullptr;
  if (const auto* c = doc->as_object().if_contains("components"); c && c->is_object()) {
    if (const auto* s = c->as_object().if_contains("schemas"); s && s->is_object()) {
      kind = s->as_object().if_contains("JobKind");
    }
  }
  ASSERT_TRUE(kind && kind->is_object()) << "components.schemas.JobKind is missing";
  const auto* e = kind->as_object().if_contains("enum");
  ASSERT_TRUE(e && e->is_array());
  std::vector<std::string> documented;
  for (const auto& k : e->as_array()) {
    ASSERT_TRUE(k.is_string());
    documented.emplace_back(k.as_string());
  }
  EXPECT_EQ(documented, engine::StandardJobKinds())
      << "src/api/openapi.json JobKind.enum must list engine::StandardJobKinds() (sorted)";
}

}  // namespace
}  // namespace ds::mcp
