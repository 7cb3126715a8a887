#include "hooks/hook_handler.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "core/encoding.h"
#include "hooks/project_dir.h"
#include "memory/model.h"
#include "store/projects.h"

namespace ds::hooks {
namespace {

namespace fs = std::filesystem;

constexpr char kAgent[] = "claude-code";
constexpr size_t kMaxErrorOutputBytes = 4000;
constexpr size_t kMaxPromptQueryBytes = 2000;

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

const json::object* Obj(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

bool IsFileWriteTool(std::string_view tool) {
  return tool == "Write" || tool == "Edit" || tool == "MultiEdit" || tool == "NotebookEdit";
}

std::string ToolFilePath(const json::object& input) {
  const json::object* ti = Obj(input, "tool_input");
  if (!ti) return "";
  std::string p = Str(*ti, "file_path");
  if (p.empty()) p = Str(*ti, "notebook_path");
  return p;
}

json::object ContextOutput(const std::string& event, const std::string& text) {
  return json::object{
      {"hookSpecificOutput", json::object{{"hookEventName", event}, {"additionalContext", text}}}};
}

std::string CutToTokens(const std::string& text, int tokens) {
  size_t max_bytes = static_cast<size_t>(std::max(0, tokens)) * 4;
  if (text.size() <= max_bytes) return text;
  return std::string(Utf8Prefix(text, max_bytes > 20 ? max_bytes - 20 : max_bytes)) +
         "\n…[truncated]";
}

bool LooksBinary(std::string_view content) {
  std::string_view head = content.substr(0, 8192);
  return head.find('\0') != std::string_view::npos || !IsValidUtf8(content);
}

// Splits text into chunks of at most `max` bytes at line ends where possible.
std::vector<std::string> Chunks(const std::string& text, size_t max) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + max);
    if (end < text.size()) {
      size_t nl = text.rfind('\n', end - 1);
      if (nl != std::string::npos && nl > pos) {
        end = nl + 1;
      } else {
        end = pos + Utf8Prefix(std::string_view(text).substr(pos), max).size();
      }
    }
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  if (out.empty()) out.push_back("");
  return out;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "cpp" for src/x.cpp: the file's extension when it is a plain short name.
std::string CodeFormat(const std::string& path) {
  std::string base = BaseName(path);
  size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0 || base.size() - dot - 1 > 16) return "text";
  std::string ext = base.substr(dot + 1);
  for (char& ch : ext) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!std::isalnum(static_cast<unsigned char>(ch))) return "text";
  }
  return ext.empty() ? "text" : ext;
}

// The tool's exit code when the tool reports one (Bash results).
std::optional<int64_t> ExitCode(const json::object& response) {
  for (const char* key : {"exit_code", "exitCode", "returnCode", "return_code"}) {
    const auto* v = response.if_contains(key);
    if (v && v->is_int64()) return v->as_int64();
  }
  return std::nullopt;
}

}  // namespace

const std::vector<std::string_view>& HookEvents() {
  static const std::vector<std::string_view> events = {
      "SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
      "Stop",         "SessionEnd"};
  return events;
}

bool IsIgnoredPath(std::string_view path) {
  std::string p(path);
  std::replace(p.begin(), p.end(), '\\', '/');
  static const char* kDirs[] = {".git",   "node_modules", "build",        "dist",        "target",
                                "out",    ".venv",        "venv",         "__pycache__", ".next",
                                ".cache", ".gradle",      ".idea",        "vendor",      "coverage",
                                ".tox",   ".mypy_cache",  ".pytest_cache"};
  std::string with_slashes = "/" + p;
  for (const char* d : kDirs) {
    if (with_slashes.find("/" + std::string(d) + "/") != std::string::npos) return true;
  }
  std::string base = BaseName(p);
  std::string lower = base;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const char* kLockFiles[] = {"package-lock.json", "yarn.lock",    "pnpm-lock.yaml",
                                     "cargo.lock",        "poetry.lock",  "go.sum",
                                     "composer.lock",     "gemfile.lock", "pipfile.lock",
                                     "bun.lockb",         "flake.lock",   "uv.lock"};
  for (const char* l : kLockFiles) {
    if (lower == l) return true;
  }
  // Secrets: env files, keys, certificates, credential stores.
  if (lower == ".env" || lower.rfind(".env.", 0) == 0 || lower == ".npmrc" || lower == ".pypirc" ||
      lower == ".netrc" || lower.rfind("id_rsa", 0) == 0 || lower.rfind("id_ed25519", 0) == 0 ||
      lower.rfind("id_ecdsa", 0) == 0) {
    return true;
  }
  // Files named like secrets or credentials hold them, unless they are
  // source code about them (src/secret_manager.cpp).
  if (lower.find("credential") != std::string::npos || lower.find("secret") != std::string::npos) {
    static const char* kCodeExt[] = {".c",     ".cc",    ".cpp", ".cxx", ".h",   ".hpp",
                                     ".py",    ".js",    ".ts",  ".tsx", ".jsx", ".go",
                                     ".rs",    ".java",  ".kt",  ".rb",  ".php", ".cs",
                                     ".swift", ".scala", ".sh",  ".md",  ".rst"};
    bool code = false;
    for (const char* e : kCodeExt) {
      std::string ext(e);
      code |= lower.size() > ext.size() &&
              lower.compare(lower.size() - ext.size(), ext.size(), ext) == 0;
    }
    if (!code) return true;
  }
  static const char* kSecretExt[] = {".pem",      ".key", ".p12", ".pfx", ".jks",
                                     ".keystore", ".crt", ".der", ".gpg", ".asc"};
  static const char* kBinaryExt[] = {
      ".png",   ".jpg", ".jpeg", ".gif",   ".ico", ".pdf",    ".zip", ".gz",     ".tar",
      ".so",    ".a",   ".o",    ".exe",   ".dll", ".bin",    ".db",  ".sqlite", ".wasm",
      ".class", ".jar", ".woff", ".woff2", ".ttf", ".min.js", ".map"};
  auto ends_with = [&](const char* ext) {
    std::string e(ext);
    return lower.size() > e.size() && lower.compare(lower.size() - e.size(), e.size(), e) == 0;
  };
  for (const char* e : kSecretExt) {
    if (ends_with(e)) return true;
  }
  for (const char* e : kBinaryExt) {
    if (ends_with(e)) return true;
  }
  return false;
}

Result<HookRequest> PrepareHookRequest(std::string_view event, std::string_view input_text) {
  const auto& events = HookEvents();
  if (std::find(events.begin(), events.end(), event) == events.end()) {
    std::string list;
    for (auto e : events) list += (list.empty() ? "" : ", ") + std::string(e);
    return Status::InvalidArgument("unknown hook event \"" + std::string(event) + "\"; one of " +
                                   list);
  }
  DS_ASSIGN_OR_RETURN(json::value parsed, ParseJson(input_text, 64));
  if (!parsed.is_object()) return Status::InvalidArgument("hook input must be a JSON object");
  HookRequest r;
  r.event = std::string(event);
  r.input = std::move(parsed.as_object());
  std::string cwd = Str(r.input, "cwd");
  std::error_code ec;
  if (cwd.empty()) cwd = fs::current_path(ec).string();
  const char* env_project = std::getenv("DEVSTREAM_PROJECT");
  ProjectDir dir = FindProjectDir(cwd);
  r.project = env_project && *env_project ? env_project : dir.name;
  // Only so much of each text is ever used; cut it here so a relayed
  // request stays small.
  auto cut = [](json::object& o, std::string_view key, size_t max) {
    if (auto* v = o.if_contains(key); v && v->is_string() && v->as_string().size() > max) {
      *v = json::string(Utf8Prefix(v->as_string(), max));
    }
  };
  cut(r.input, "prompt", kMaxPromptQueryBytes);
  cut(r.input, "error", kMaxErrorOutputBytes);
  cut(r.input, "error_message", kMaxErrorOutputBytes);
  if (auto* resp = r.input.if_contains("tool_response"); resp && resp->is_object()) {
    cut(resp->as_object(), "stdout", kMaxErrorOutputBytes);
    cut(resp->as_object(), "stderr", kMaxErrorOutputBytes);
  }
  if (r.event == "PostToolUse" || r.event == "PreToolUse") {
    const std::string tool = Str(r.input, "tool_name");
    std::string path = ToolFilePath(r.input);
    if (IsFileWriteTool(tool)) {
      // The file's content travels in `files`; the tool's copies of it (new
      // content, edit strings, patches) would only double the request.
      json::object slim_input;
      if (!path.empty()) slim_input["file_path"] = path;
      r.input["tool_input"] = std::move(slim_input);
      r.input["tool_response"] = json::object{};
    }
    if (IsFileWriteTool(tool) && !path.empty()) {
      fs::path abs = fs::path(path).is_absolute() ? fs::path(path) : fs::path(cwd) / path;
      // Resolved like the project root, so a symlinked checkout still gives
      // paths relative to the root.
      fs::path resolved = fs::weakly_canonical(abs, ec);
      abs = ec ? abs.lexically_normal() : resolved;
      std::string rel = abs.string();
      if (!dir.root.empty()) {
        fs::path relative = abs.lexically_relative(dir.root);
        if (!relative.empty() && relative.native().rfind("..", 0) != 0) rel = relative.string();
      }
      HookFile f{rel, ""};
      if (r.event == "PostToolUse" && !IsIgnoredPath(rel)) {
        HookSettings defaults;
        auto size = fs::file_size(abs, ec);
        if (!ec && size <= defaults.chunk_bytes * defaults.max_chunks) {
          std::ifstream in(abs, std::ios::binary);
          std::ostringstream ss;
          ss << in.rdbuf();
          f.content = ss.str();
          if (!LooksBinary(f.content)) r.files.push_back(std::move(f));
        }
      } else if (r.event == "PreToolUse") {
        r.files.push_back(std::move(f));
      }
    }
  }
  return r;
}

json::object ToJson(const HookRequest& r) {
  json::array files;
  for (const auto& f : r.files)
    files.push_back(json::object{{"path", f.path}, {"content", f.content}});
  return {
      {"event", r.event}, {"input", r.input}, {"project", r.project}, {"files", std::move(files)}};
}

Result<HookRequest> HookRequestFromJson(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "hook"));
  ObjectReader rd(*obj, "hook");
  HookRequest r;
  if (auto e = rd.Enum("event", true, HookEvents())) r.event = *e;
  if (auto p = rd.String("project", false, 0, 200)) r.project = *p;
  const json::value* input = rd.Raw("input");
  if (!input || !input->is_object()) {
    rd.Fail("input", "must be the event object");
  } else {
    r.input = input->as_object();
  }
  if (const json::value* files = rd.Raw("files"); files && !files->is_null()) {
    if (!files->is_array() || files->as_array().size() > 16) {
      rd.Fail("files", "must be an array of at most 16 {path, content}");
    } else {
      for (const auto& f : files->as_array()) {
        if (!f.is_object()) {
          rd.Fail("files", "items must be objects");
          break;
        }
        std::string path = Str(f.as_object(), "path");
        std::string content = Str(f.as_object(), "content");
        if (path.empty() || path.size() > 4096 || !IsValidUtf8(content)) {
          rd.Fail("files", "items need a path (1..4096) and UTF-8 content");
          break;
        }
        r.files.push_back({path, content});
      }
    }
  }
  DS_RETURN_IF_ERROR(rd.Finish());
  return r;
}

HookHandler::HookHandler(HookServices services, HookSettings settings)
    : s_(services), settings_(settings) {}

Result<std::optional<engine::Session>> HookHandler::SessionFor(const HookRequest& r) {
  std::string external = Str(r.input, "session_id");
  if (external.empty() || external.size() > 200) return std::optional<engine::Session>();
  engine::SessionInput in;
  if (!r.project.empty()) in.project = r.project;
  in.agent = kAgent;
  in.external_id = external;
  DS_ASSIGN_OR_RETURN(auto started, s_.sessions.Start(in));
  return std::optional<engine::Session>(std::move(started.first));
}

Result<std::optional<json::object>> HookHandler::Handle(const HookRequest& r) {
  if (r.event == "SessionStart") return SessionStart(r);
  if (r.event == "UserPromptSubmit") return UserPromptSubmit(r);
  if (r.event == "PreToolUse") return PreToolUse(r);
  if (r.event == "PostToolUse") {
    DS_RETURN_IF_ERROR(PostToolUse(r));
    return std::optional<json::object>();
  }
  if (r.event == "PostToolUseFailure") {
    std::string tool = Str(r.input, "tool_name");
    std::string command = tool;
    if (const json::object* ti = Obj(r.input, "tool_input")) {
      std::string cmd = Str(*ti, "command");
      command = cmd.empty() ? tool + " " + std::string(Utf8Prefix(ToJsonString(*ti), 500)) : cmd;
    }
    std::string error = Str(r.input, "error");
    if (error.empty()) error = Str(r.input, "error_message");
    // Without any error text there is nothing worth remembering.
    if (error.find_first_not_of(" \t\r\n") != std::string::npos) {
      DS_RETURN_IF_ERROR(StoreError(r, command, error));
    }
    return std::optional<json::object>();
  }
  if (r.event == "Stop") {
    DS_ASSIGN_OR_RETURN(auto session, SessionFor(r));
    if (session) DS_RETURN_IF_ERROR(s_.sessions.RecordActivity(session->id));
    return std::optional<json::object>();
  }
  if (r.event == "SessionEnd") {
    std::string external = Str(r.input, "session_id");
    if (!external.empty()) {
      auto ended = s_.sessions.End(
          external, r.project.empty() ? std::nullopt : std::optional<std::string>(r.project));
      if (!ended.ok() && ended.status().code() != StatusCode::kNotFound) return ended.status();
    }
    return std::optional<json::object>();
  }
  return Status::InvalidArgument("unknown hook event " + r.event);
}

Result<std::optional<json::object>> HookHandler::SessionStart(const HookRequest& r) {
  DS_ASSIGN_OR_RETURN(auto session, SessionFor(r));
  std::optional<std::string> project;
  if (!r.project.empty()) project = r.project;
  std::string text;
  auto latest = s_.sessions.Latest(project);
  if (latest.ok() && (!session || latest->id != session->id) && !latest->summary.empty()) {
    text += "## Last session\n" + latest->summary + "\n";
  }
  tasks::PlanFilter pf;
  pf.project = project;
  pf.status = "active";
  pf.limit = 3;
  auto plans = s_.tasks.ListPlans(pf);
  if (plans.ok() && !plans->items.empty()) {
    text += "## Active plans\n";
    for (const auto& p : plans->items) {
      auto progress = s_.tasks.PlanProgress(p.id);
      text += "- " + p.title + " (" + p.id + ")";
      if (progress.ok()) {
        text += ": " + std::to_string(progress->completed + progress->skipped) + "/" +
                std::to_string(progress->total) + " tasks done, " +
                std::to_string(progress->active) + " active, " +
                std::to_string(progress->blocked + progress->failed) + " blocked or failed";
      }
      text += "\n";
    }
  }
  tasks::ReadyFilter rf;
  rf.project = project;
  rf.limit = 5;
  auto ready = s_.tasks.Ready(rf);
  if (ready.ok() && !ready->empty()) {
    text += "## Ready tasks (claim with devstream_next_task)\n";
    for (const auto& t : *ready) {
      text += "- " + t.id + " [P" + std::to_string(t.priority) + ", " + t.task_type + "] " +
              t.title + "\n";
    }
  }
  if (text.empty()) return std::optional<json::object>();
  text = "# DevStream: project " + (r.project.empty() ? std::string(kDefaultProject) : r.project) +
         "\n" + text;
  return std::optional<json::object>(
      ContextOutput(r.event, CutToTokens(text, settings_.session_budget_tokens)));
}

Result<std::optional<json::object>> HookHandler::UserPromptSubmit(const HookRequest& r) {
  std::string prompt = Str(r.input, "prompt");
  if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) {
    return std::optional<json::object>();
  }
  memory::ContextQuery q;
  q.query = std::string(Utf8Prefix(prompt, kMaxPromptQueryBytes));
  if (!r.project.empty()) q.filter.project = r.project;
  q.token_budget = settings_.prompt_budget_tokens;
  auto ctx = s_.memory.Context(q);
  if (!ctx.ok()) {
    // An unknown project has no memories yet: nothing to inject.
    if (ctx.status().code() == StatusCode::kNotFound) return std::optional<json::object>();
    return ctx.status();
  }
  if (ctx->memory_ids.empty()) return std::optional<json::object>();
  DS_ASSIGN_OR_RETURN(auto session, SessionFor(r));
  json::array ids;
  std::string id_list;
  for (int64_t id : ctx->memory_ids) {
    ids.emplace_back(id);
    id_list += (id_list.empty() ? "" : ", ") + std::to_string(id);
  }
  DS_RETURN_IF_ERROR(s_.db.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, q.filter.project));
    if (!project_id) return Status::Ok();
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO context_injections(session_id, project_id,"
                                          " query, memory_ids, tokens, created_at)"
                                          " VALUES(?,?,?,?,?,?)"));
    s.Bind(1, session ? std::optional<std::string>(session->id) : std::nullopt);
    s.Bind(2, *project_id).Bind(3, q.query).Bind(4, ToJsonString(json::value(ids)));
    s.Bind(5, ctx->tokens).Bind(6, NowTimestamp());
    return s.Run();
  }));
  std::string text = "Relevant DevStream memories (ids " + id_list +
                     "; search more with devstream_search_memory):\n" + ctx->context;
  return std::optional<json::object>(ContextOutput(r.event, text));
}

Result<std::optional<json::object>> HookHandler::PreToolUse(const HookRequest& r) {
  if (r.files.empty() || !IsFileWriteTool(Str(r.input, "tool_name"))) {
    return std::optional<json::object>();
  }
  const std::string& path = r.files.front().path;
  memory::ContextQuery q;
  q.query = path + " " + BaseName(path);
  if (!r.project.empty()) q.filter.project = r.project;
  // The file's own snapshots are what the tool is about to change: the
  // useful memories are the decisions, errors and learnings about it.
  for (auto type : memory::ContentTypes()) {
    if (type != "code") q.filter.content_types.emplace_back(type);
  }
  q.token_budget = settings_.file_budget_tokens;
  auto ctx = s_.memory.Context(q);
  if (!ctx.ok()) {
    if (ctx.status().code() == StatusCode::kNotFound) return std::optional<json::object>();
    return ctx.status();
  }
  if (ctx->memory_ids.empty()) return std::optional<json::object>();
  return std::optional<json::object>(
      ContextOutput(r.event, "DevStream memories about " + path + ":\n" + ctx->context));
}

Status HookHandler::PostToolUse(const HookRequest& r) {
  std::string tool = Str(r.input, "tool_name");
  if (tool == "Bash") {
    const json::object* response = Obj(r.input, "tool_response");
    auto code = response ? ExitCode(*response) : std::nullopt;
    if (code && *code != 0) {
      const json::object* ti = Obj(r.input, "tool_input");
      std::string output = Str(*response, "stderr");
      std::string out = Str(*response, "stdout");
      if (!out.empty()) output = out + (output.empty() ? "" : "\n" + output);
      return StoreError(r, ti ? Str(*ti, "command") : "Bash",
                        "exit code " + std::to_string(*code) + "\n" + output);
    }
    return Status::Ok();
  }
  if (!IsFileWriteTool(tool)) return Status::Ok();
  for (const auto& f : r.files) {
    if (IsIgnoredPath(f.path)) continue;
    DS_RETURN_IF_ERROR(StoreFile(r, f));
  }
  return Status::Ok();
}

Status HookHandler::StoreFile(const HookRequest& r, const HookFile& f) {
  if (f.content.size() > settings_.chunk_bytes * settings_.max_chunks) return Status::Ok();
  if (f.content.find_first_not_of(" \t\r\n") == std::string::npos) return Status::Ok();
  DS_ASSIGN_OR_RETURN(auto session, SessionFor(r));
  std::vector<std::string> chunks = Chunks(f.content, settings_.chunk_bytes);
  std::vector<memory::MemoryInput> inputs;
  for (size_t i = 0; i < chunks.size(); ++i) {
    memory::MemoryInput in;
    if (!r.project.empty()) in.project = r.project;
    if (session) in.session_id = session->id;
    in.content = chunks[i];
    in.content_type = "code";
    in.content_format = CodeFormat(f.path);
    in.source = "hook";
    // Chunk k of a large file is its own snapshot line, so a newer snapshot
    // supersedes chunk by chunk.
    in.file_path = i == 0 ? f.path : f.path + "#chunk-" + std::to_string(i + 1);
    in.keywords = {f.path, BaseName(f.path)};
    inputs.push_back(std::move(in));
  }
  DS_RETURN_IF_ERROR(s_.memory.StoreBatch(inputs).status());
  // Chunks beyond the new snapshot's last belong to a longer old version.
  std::vector<int64_t> stale;
  std::string prefix = f.path + "#chunk-";
  DS_RETURN_IF_ERROR(s_.db.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto project_id, ProjectIdForRead(c, inputs.front().project));
    if (!project_id) return Status::Ok();
    DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, file_path FROM semantic_memory"
                                          " WHERE project_id = ? AND archived = 0"
                                          " AND superseded_by IS NULL AND content_type = 'code'"
                                          " AND substr(file_path, 1, ?) = ?"));
    s.Bind(1, *project_id).Bind(2, static_cast<int64_t>(prefix.size())).Bind(3, prefix);
    for (;;) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      std::string rest = s.Text(1).substr(prefix.size());
      size_t k = 0;
      bool numeric =
          !rest.empty() && rest.size() < 6 &&
          std::all_of(rest.begin(), rest.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      if (numeric) k = std::stoul(rest);
      if (numeric && k > chunks.size()) stale.push_back(s.Int(0));
    }
    return Status::Ok();
  }));
  for (int64_t id : stale) {
    auto forgotten = s_.memory.Forget(id);
    if (!forgotten.ok() && forgotten.status().code() != StatusCode::kNotFound) {
      return forgotten.status();
    }
  }
  return Status::Ok();
}

Status HookHandler::StoreError(const HookRequest& r, const std::string& command,
                               const std::string& output) {
  if (command.empty() && output.empty()) return Status::Ok();
  DS_ASSIGN_OR_RETURN(auto session, SessionFor(r));
  memory::MemoryInput in;
  if (!r.project.empty()) in.project = r.project;
  if (session) in.session_id = session->id;
  in.content = "Command failed: " + std::string(Utf8Prefix(command, 1000)) + "\n" +
               std::string(Utf8Prefix(output, kMaxErrorOutputBytes));
  in.content_type = "error";
  in.source = "hook";
  std::string tool = Str(r.input, "tool_name");
  if (!tool.empty()) in.keywords = {std::string(Utf8Prefix(tool, 100))};
  return s_.memory.Store(in).status();
}

}  // namespace ds::hooks
