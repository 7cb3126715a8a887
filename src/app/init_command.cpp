#include "app/init_command.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ds::app {
namespace {

namespace fs = std::filesystem;

struct HookSpec {
  const char* event;
  const char* matcher;  // nullptr: the event takes no matcher
  int timeout_s;
};

constexpr HookSpec kHooks[] = {
    {"SessionStart", nullptr, 10},
    {"UserPromptSubmit", nullptr, 10},
    {"PreToolUse", "Write|Edit|MultiEdit", 10},
    {"PostToolUse", "Write|Edit|MultiEdit|NotebookEdit|Bash", 15},
    {"PostToolUseFailure", "Bash", 10},
    {"Stop", nullptr, 10},
    {"SessionEnd", nullptr, 10},
};

std::string HookCommand(const std::string& command, const char* event) {
  return command + " hook " + event;
}

// Whether a settings hook entry is ours (any devstream binary, this event).
bool IsOurEntry(const json::value& entry, const char* event) {
  if (!entry.is_object()) return false;
  const auto* hooks = entry.as_object().if_contains("hooks");
  if (!hooks || !hooks->is_array()) return false;
  std::string suffix = std::string(" hook ") + event;
  for (const auto& h : hooks->as_array()) {
    if (!h.is_object()) continue;
    const auto* cmd = h.as_object().if_contains("command");
    if (!cmd || !cmd->is_string()) continue;
    std::string_view c = cmd->as_string();
    if (c.size() >= suffix.size() && c.substr(c.size() - suffix.size()) == suffix &&
        c.find("devstream") != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

Result<json::object> ReadJsonFile(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return json::object{};
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object{};
  auto parsed = ParseJson(text, 64);
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::PreconditionFailed(path.string() +
                                      " is not a JSON object; fix or move it, then run init again");
  }
  return parsed->as_object();
}

// Writes `value` when it differs from what is there; backs up the old file.
Result<bool> WriteIfChanged(const fs::path& path, const json::object& before,
                            const json::object& after) {
  std::error_code ec;
  bool existed = fs::exists(path, ec);
  if (existed && json::value(before) == json::value(after)) return false;
  fs::create_directories(path.parent_path(), ec);
  if (ec)
    return Status::Internal("cannot create " + path.parent_path().string() + ": " + ec.message());
  if (existed) {
    fs::copy_file(path, path.string() + ".bak", fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::Internal("cannot back up " + path.string() + ": " + ec.message());
  }
  fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << ToPrettyJson(after);
    if (!out) return Status::Internal("cannot write " + tmp.string());
  }
  fs::rename(tmp, path, ec);
  if (ec) return Status::Internal("cannot replace " + path.string() + ": " + ec.message());
  return true;
}

}  // namespace

json::object MergeHookSettings(json::object settings, const std::string& command) {
  json::value& hooks_v = settings["hooks"];
  if (!hooks_v.is_object()) hooks_v = json::object{};
  json::object& hooks = hooks_v.as_object();
  for (const auto& spec : kHooks) {
    json::object entry;
    if (spec.matcher) entry["matcher"] = spec.matcher;
    entry["hooks"] = json::array{json::object{{"type", "command"},
                                              {"command", HookCommand(command, spec.event)},
                                              {"timeout", spec.timeout_s}}};
    json::value& list_v = hooks[spec.event];
    if (!list_v.is_array()) list_v = json::array{};
    json::array& list = list_v.as_array();
    bool replaced = false;
    for (auto& existing : list) {
      if (IsOurEntry(existing, spec.event)) {
        if (!replaced) {
          existing = entry;
          replaced = true;
        }
      }
    }
    // Drop duplicates of ours beyond the first.
    json::array kept;
    bool seen = false;
    for (auto& existing : list) {
      if (IsOurEntry(existing, spec.event)) {
        if (seen) continue;
        seen = true;
      }
      kept.push_back(existing);
    }
    if (!replaced) kept.push_back(entry);
    list = std::move(kept);
  }
  return settings;
}

json::object MergeMcpConfig(json::object config, const std::string& command) {
  json::value& servers_v = config["mcpServers"];
  if (!servers_v.is_object()) servers_v = json::object{};
  servers_v.as_object()["devstream"] =
      json::object{{"type", "stdio"}, {"command", command}, {"args", json::array{"mcp"}}};
  return config;
}

std::string DevStreamCommand() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "devstream";
  if (const char* path = std::getenv("PATH")) {
    std::string p(path);
    size_t pos = 0;
    while (pos <= p.size()) {
      size_t end = p.find(':', pos);
      if (end == std::string::npos) end = p.size();
      fs::path candidate = fs::path(p.substr(pos, end - pos)) / "devstream";
      if (!candidate.parent_path().empty() && fs::equivalent(candidate, self, ec) && !ec) {
        return "devstream";
      }
      pos = end + 1;
    }
  }
  return self.string();
}

Result<InitResult> InitProject(const std::string& project_dir, const std::string& command) {
  std::error_code ec;
  fs::path dir =
      fs::absolute(project_dir.empty() ? fs::current_path(ec) : fs::path(project_dir), ec);
  if (ec || !fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("project directory " + project_dir + " does not exist");
  }
  InitResult r;
  fs::path settings_path = dir / ".claude" / "settings.json";
  fs::path mcp_path = dir / ".mcp.json";
  r.settings_path = settings_path.string();
  r.mcp_path = mcp_path.string();
  // Read both first: a malformed file stops init before anything is written.
  DS_ASSIGN_OR_RETURN(json::object settings, ReadJsonFile(settings_path));
  DS_ASSIGN_OR_RETURN(json::object mcp, ReadJsonFile(mcp_path));
  if (const auto* h = settings.if_contains("hooks"); h && !h->is_object()) {
    return Status::PreconditionFailed(settings_path.string() + ": \"hooks\" must be an object");
  }
  if (const auto* m = mcp.if_contains("mcpServers"); m && !m->is_object()) {
    return Status::PreconditionFailed(mcp_path.string() + ": \"mcpServers\" must be an object");
  }
  DS_ASSIGN_OR_RETURN(r.settings_changed, WriteIfChanged(settings_path, settings,
                                                         MergeHookSettings(settings, command)));
  DS_ASSIGN_OR_RETURN(r.mcp_changed, WriteIfChanged(mcp_path, mcp, MergeMcpConfig(mcp, command)));
  return r;
}

}  // namespace ds::app
