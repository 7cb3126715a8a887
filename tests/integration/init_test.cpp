// `devstream init --project-dir D`: DevStream's hooks merged into
// D/.claude/settings.json and its MCP server into D/.mcp.json, keeping the
// user's entries, idempotent, with a .bak of a changed file, and leaving a
// malformed file alone.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"

namespace ds::itest {
namespace {

namespace fs = std::filesystem;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

json::object ParseObject(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  EXPECT_TRUE(v.is_object()) << text;
  return v.is_object() ? v.as_object() : json::object{};
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

const char* const kEvents[] = {"SessionStart", "UserPromptSubmit",   "PreToolUse",
                               "PostToolUse",  "PostToolUseFailure", "Stop",
                               "SessionEnd"};

class InitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    project_ = TempDir() + "/project";
    fs::create_directories(project_);
    settings_ = project_ + "/.claude/settings.json";
    mcp_ = project_ + "/.mcp.json";
  }
  CommandResult Init(const std::vector<std::string>& extra = {}, const EnvVars& env = {}) {
    std::vector<std::string> args{"init", "--project-dir", project_};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args, env, 60000);
  }
  // The hook entries whose command is DevStream's for `event`.
  static std::vector<json::object> OurEntries(const json::object& settings, const char* event) {
    std::vector<json::object> out;
    const json::value* hooks = settings.if_contains("hooks");
    if (!hooks || !hooks->is_object()) return out;
    const json::value* list = hooks->as_object().if_contains(event);
    if (!list || !list->is_array()) return out;
    for (const auto& entry : list->as_array()) {
      for (const auto& h : entry.at("hooks").as_array()) {
        std::string cmd(h.at("command").as_string());
        if (cmd.find("devstream") != std::string::npos &&
            EndsWith(cmd, std::string("hook ") + event)) {
          out.push_back(entry.as_object());
        }
      }
    }
    return out;
  }
  // Checks DevStream's hooks and MCP server are configured; returns the
  // command that starts devstream.
  std::string CheckConfigured(const json::object& settings, const json::object& mcp) {
    std::string command;
    for (const char* event : kEvents) {
      SCOPED_TRACE(event);
      auto ours = OurEntries(settings, event);
      EXPECT_EQ(ours.size(), 1u);
      if (ours.size() != 1) continue;
      const auto& hooks = ours[0].at("hooks").as_array();
      EXPECT_EQ(hooks.size(), 1u);
      if (hooks.size() != 1) continue;
      EXPECT_EQ(hooks[0].at("type").as_string(), "command");
      std::string cmd(hooks[0].at("command").as_string());
      EXPECT_TRUE(EndsWith(cmd, std::string(" hook ") + event)) << cmd;
      EXPECT_EQ(cmd.find("--db"), std::string::npos) << "no database in the repository: " << cmd;
      EXPECT_EQ(cmd.find("--url"), std::string::npos) << cmd;
      std::string prefix =
          cmd.substr(0, cmd.size() - std::string(" hook ").size() - std::string(event).size());
      if (command.empty()) command = prefix;
      EXPECT_EQ(prefix, command) << "every hook starts the same devstream";
      if (const auto* t = hooks[0].as_object().if_contains("timeout")) {
        EXPECT_TRUE(t->is_int64());
        EXPECT_GT(t->as_int64(), 0);
      }
      if (std::string(event) == "PreToolUse") {
        EXPECT_EQ(ours[0].at("matcher").as_string(), "Write|Edit|MultiEdit");
      }
      if (std::string(event) == "PostToolUse") {
        // Writes and Bash results are what PostToolUse stores.
        std::string m(ours[0].at("matcher").as_string());
        for (const char* tool : {"Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"}) {
          EXPECT_NE(("|" + m + "|").find(std::string("|") + tool + "|"), std::string::npos) << m;
        }
      }
    }
    const json::value* servers = mcp.if_contains("mcpServers");
    EXPECT_TRUE(servers && servers->is_object());
    if (servers && servers->is_object()) {
      const json::value* ds = servers->as_object().if_contains("devstream");
      EXPECT_TRUE(ds && ds->is_object());
      if (ds && ds->is_object()) {
        EXPECT_EQ(ds->at("command").as_string(), command);
        EXPECT_EQ(ds->at("args"), (json::array{"mcp"}));
      }
    }
    return command;
  }

  std::string project_, settings_, mcp_;
};

TEST_F(InitTest, EmptyDirectoryGetsHooksAndMcpServer) {
  auto r = Init();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::exists(settings_));
  ASSERT_TRUE(fs::exists(mcp_));
  EXPECT_FALSE(fs::exists(settings_ + ".bak")) << "nothing to back up";
  EXPECT_FALSE(fs::exists(mcp_ + ".bak"));
  EXPECT_NE(r.out.find("updated " + settings_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("updated " + mcp_), std::string::npos) << r.out;
  std::string command =
      CheckConfigured(ParseObject(ReadText(settings_)), ParseObject(ReadText(mcp_)));
  // Not on PATH here: the absolute path of this very binary.
  EXPECT_TRUE(fs::equivalent(command, DEVSTREAM_BINARY)) << command;
  // No stray temporary files.
  for (const auto& e : fs::recursive_directory_iterator(project_)) {
    EXPECT_FALSE(EndsWith(e.path().string(), ".tmp")) << e.path();
  }
}

TEST_F(InitTest, DevstreamOnPathIsNamedByName) {
  const char* path = std::getenv("PATH");
  std::string dir = fs::path(DEVSTREAM_BINARY).parent_path().string();
  auto r = Init({}, {{"PATH", dir + ":" + (path ? path : "/usr/bin:/bin")}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CheckConfigured(ParseObject(ReadText(settings_)), ParseObject(ReadText(mcp_))),
            "devstream");
}

TEST_F(InitTest, KeepsTheUsersEntriesAndBacksUp) {
  const std::string old_settings = R"js({
  "permissions": {"allow": ["Bash(npm run test:*)"], "deny": ["Read(./.env)"]},
  "model": "opus",
  "hooks": {
  "PreToolUse" : [ {
    "matcher" : "Bash",
    "hooks" : [ {"type" : "command", "command" : "./scripts/guard.sh"} ]
  } ],
                 "Notification"
      : [ {"hooks" : [ {"type" : "command", "command" : "notify-send claude"} ]} ]
}
}
)js";
  const std::string old_mcp =
      R"js({"mcpServers": {"github": {"command": "gh-mcp", "args": []}}})js";
  WriteText(settings_, old_settings);
  WriteText(mcp_, old_mcp);
  auto r = Init();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadText(settings_ + ".bak"), old_settings);
  EXPECT_EQ(ReadText(mcp_ + ".bak"), old_mcp);

  json::object settings = ParseObject(ReadText(settings_));
  json::object mcp = ParseObject(ReadText(mcp_));
  CheckConfigured(settings, mcp);
  EXPECT_EQ(settings.at("model").as_string(), "opus");
  EXPECT_EQ(settings.at("permissions"), ParseObject(old_settings).at("permissions"));
  const auto& pre = settings.at("hooks").at("PreToolUse").as_array();
  ASSERT_EQ(pre.size(), 2u);
  EXPECT_EQ(pre[0], ParseObject(old_settings).at("hooks").at("PreToolUse").at(0))
      << "the user's own hook stays, first";
  EXPECT_EQ(settings.at("hooks").at("Notification"),
            ParseObject(old_settings).at("hooks").at("Notification"));
  EXPECT_EQ(mcp.at("mcpServers").at("github"), ParseObject(old_mcp).at("mcpServers").at("github"));
}

TEST_F(InitTest, SecondRunChangesNothing) {
  WriteText(settings_, R"js({"permissions": {"allow": []}})js");
  auto first = Init();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::string settings = ReadText(settings_), mcp = ReadText(mcp_);
  std::string bak = ReadText(settings_ + ".bak");
  EXPECT_EQ(bak, R"js({"permissions": {"allow": []}})js");
  struct stat before {};
  ASSERT_EQ(stat(settings_.c_str(), &before), 0);

  auto second = Init();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(ReadText(settings_), settings);
  EXPECT_EQ(ReadText(mcp_), mcp);
  EXPECT_EQ(ReadText(settings_ + ".bak"), bak) << "no new backup";
  EXPECT_FALSE(fs::exists(mcp_ + ".bak")) << ".mcp.json was created, never changed";
  EXPECT_NE(second.out.find("unchanged " + settings_), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("unchanged " + mcp_), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find("updated"), std::string::npos) << second.out;
  struct stat after {};
  ASSERT_EQ(stat(settings_.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "settings.json was rewritten";

  auto json_out = Init({"--json"});
  ASSERT_EQ(json_out.exit_code, 0) << json_out.err;
  json::object o = ParseObject(json_out.out);
  EXPECT_FALSE(o.at("settings_changed").as_bool());
  EXPECT_FALSE(o.at("mcp_changed").as_bool());
}

// Our entry from an older install (another binary path) is replaced, not
// duplicated; the user's hooks on the same event stay.
TEST_F(InitTest, ReplacesAnOlderDevstreamEntry) {
  WriteText(settings_, R"js({"hooks": {"Stop": [
    {"hooks": [{"type": "command", "command": "/opt/old/bin/devstream hook Stop"}]},
    {"hooks": [{"type": "command", "command": "say done"}]},
    {"hooks": [{"type": "command", "command": "/usr/local/bin/devstream hook Stop"}]}
  ]}})js");
  auto r = Init();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object settings = ParseObject(ReadText(settings_));
  CheckConfigured(settings, ParseObject(ReadText(mcp_)));
  const auto& stop = settings.at("hooks").at("Stop").as_array();
  ASSERT_EQ(stop.size(), 2u) << json::serialize(stop);
  std::string cmds = json::serialize(stop);
  EXPECT_NE(cmds.find("say done"), std::string::npos);
  EXPECT_EQ(cmds.find("/opt/old/bin"), std::string::npos) << cmds;
}

TEST_F(InitTest, MalformedSettingsAreLeftAlone) {
  const std::string broken = "{\"hooks\": {\"Stop\": [}\n";
  WriteText(settings_, broken);
  auto r = Init();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("settings.json"), std::string::npos) << r.err;
  EXPECT_EQ(ReadText(settings_), broken);
  EXPECT_FALSE(fs::exists(settings_ + ".bak"));
  EXPECT_FALSE(fs::exists(mcp_)) << "init stops before writing anything";

  // Valid JSON of the wrong shape is refused the same way.
  for (const std::string& wrong : {std::string("[1, 2]"), std::string("{\"hooks\": []}")}) {
    WriteText(settings_, wrong);
    auto again = Init();
    EXPECT_EQ(again.exit_code, 1) << wrong << ": " << again.err;
    EXPECT_EQ(ReadText(settings_), wrong);
    EXPECT_FALSE(fs::exists(mcp_));
  }
}

TEST_F(InitTest, MalformedMcpConfigIsLeftAlone) {
  WriteText(mcp_, "not json");
  auto r = Init();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(".mcp.json"), std::string::npos) << r.err;
  EXPECT_EQ(ReadText(mcp_), "not json");
  EXPECT_FALSE(fs::exists(settings_)) << "init stops before writing anything";
}

TEST_F(InitTest, MissingProjectDirectory) {
  std::string missing = project_ + "/does/not/exist";
  auto r = RunCli({"init", "--project-dir", missing}, {}, 60000);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(missing));

  // A regular file is no project directory either.
  WriteText(project_ + "/file", "x");
  auto file = RunCli({"init", "--project-dir", project_ + "/file"}, {}, 60000);
  EXPECT_NE(file.exit_code, 0);
  EXPECT_FALSE(fs::exists(project_ + "/file/.mcp.json"));
}

}  // namespace
}  // namespace ds::itest
