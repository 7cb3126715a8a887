// Claude Code hooks below the process boundary (src/hooks/):
//  - IsIgnoredPath: paths that are never stored, and ordinary ones that are;
//  - HookRequestFromJson: the relay body the server accepts (and ToJson's
//    round trip);
//  - PrepareHookRequest: the event name, the recorded fixtures
//    (tests/fixtures/hooks/), the project (git root's name, else the
//    directory's), paths relative to the root, which file contents are
//    gathered;
//  - HookHandler over OpenServices on a temp database: chunk boundaries of
//    stored files, stale chunks, the size limit, events without a session.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>

#include "app/services.h"
#include "core/encoding.h"
#include "core/json.h"
#include "hooks/hook_handler.h"
#include "hooks/project_dir.h"
#include "test_util.h"

#ifndef DEVSTREAM_SOURCE_DIR
#error "tests/CMakeLists.txt defines DEVSTREAM_SOURCE_DIR for the fixtures"
#endif

namespace ds::hooks {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// n distinct lines of `width` bytes (newline included).
std::string Lines(char tag, int n, size_t width) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::string line = std::string(1, tag) + std::to_string(i) + " ";
    line.resize(width - 1, tag);
    out += line + "\n";
  }
  return out;
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------- IsIgnoredPath

TEST(HooksIgnoredPath, IgnoredPaths) {
  for (const char* p : {
           ".git/config",
           ".git/hooks/pre-commit",
           "sub/.git/HEAD",
           "node_modules/left-pad/index.js",
           "web/node_modules/react/index.js",
           "build/main.o",
           "build/generated/config.h",
           "dist/app.js",
           "target/debug/app",
           "out/x.txt",
           ".venv/lib/site.py",
           "venv/bin/activate",
           "pkg/__pycache__/mod.cpython-311.pyc",
           ".next/server/page.js",
           ".cache/x",
           ".gradle/caches/a",
           ".idea/workspace.xml",
           "vendor/github.com/x/y.go",
           "coverage/lcov.info",
           ".tox/py311/bin/python",
           ".mypy_cache/3.11/x.json",
           ".pytest_cache/v/cache/lastfailed",
           "package-lock.json",
           "web/package-lock.json",
           "yarn.lock",
           "pnpm-lock.yaml",
           "Cargo.lock",
           "poetry.lock",
           "go.sum",
           "composer.lock",
           "Gemfile.lock",
           "Pipfile.lock",
           "bun.lockb",
           "flake.lock",
           "uv.lock",
           ".env",
           "config/.env",
           ".env.local",
           ".env.production",
           ".ENV",
           ".npmrc",
           ".pypirc",
           ".netrc",
           "id_rsa",
           "id_rsa.pub",
           "home/.ssh/id_ed25519",
           "id_ecdsa",
           "aws/credentials",
           "config/credentials.yml",
           "gcp-credentials.json",
           "k8s/secret.yaml",
           "client_secret.json",
           "server.pem",
           "tls/server.key",
           "cert.p12",
           "cert.pfx",
           "release.jks",
           "debug.keystore",
           "ca.crt",
           "ca.der",
           "backup.gpg",
           "signature.asc",
           "logo.png",
           "photo.JPG",
           "photo.jpeg",
           "anim.gif",
           "favicon.ico",
           "manual.pdf",
           "release.zip",
           "release.tar.gz",
           "archive.tar",
           "libfoo.so",
           "libfoo.a",
           "main.o",
           "tool.exe",
           "tool.dll",
           "firmware.bin",
           "local.db",
           "data.sqlite",
           "module.wasm",
           "Main.class",
           "app.jar",
           "font.woff",
           "font.woff2",
           "font.ttf",
           "app.min.js",
           "app.js.map",
           "C:\\work\\repo\\node_modules\\x\\index.js",
           "src\\.git\\config",
       }) {
    EXPECT_TRUE(IsIgnoredPath(p)) << p;
  }
}

TEST(HooksIgnoredPath, OrdinaryPaths) {
  for (const char* p : {
           "src/x.cpp",
           "src/secret_manager.cpp",  // code about secrets, not a secret
           "src/hooks/hook_handler.cpp",
           "README.md",
           "CMakeLists.txt",
           "Makefile",
           "package.json",
           "tests/unit/hooks_unit_test.cpp",
           "docs/build.md",       // "build" as a file name, not a directory
           "src/builder/x.cpp",   // a directory that only starts like one
           "src/output/y.cpp",    // "out" is a prefix, not the directory
           "rebuild/x.cpp",       // ends like "build"
           "distance/metric.py",  // starts like "dist"
           "my.git/x",            // not the .git directory
           "gitignore.txt",
           ".gitignore",
           ".github/workflows/ci.yml",
           "env.cpp",
           "src/environment.ts",
           "src/.envrc.md",  // not an env file
           "keyboard.ts",    // "key" without the extension
           "src/keys.ts",
           "monkey.py",
           "certificate_parser.cpp",
           "cargo_lock_reader.rs",
           "locker.go",
           "pkg/go.mod",
           "notebooks/analysis.ipynb",
           "app.js",
           "style.css",
           "index.html",
           "data.json",
           "schema.sql",
           "script.sh",
           "Dockerfile",
           "src/main.rs",
           "lib/db_helpers.py",  // ".db" only as an extension
           "docs/map.md",
       }) {
    EXPECT_FALSE(IsIgnoredPath(p)) << p;
  }
}

// ---------------------------------------------------------- HookRequestFromJson

json::value Parse(const std::string& text) {
  return json::parse(text);
}

TEST(HooksRequestJson, ValidBody) {
  auto r = HookRequestFromJson(Parse(
      R"({"event":"PostToolUse","project":"repo","input":{"session_id":"s","tool_name":"Write"},
          "files":[{"path":"src/x.cpp","content":"int x;\n"}]})"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->event, "PostToolUse");
  EXPECT_EQ(r->project, "repo");
  EXPECT_EQ(r->input.at("tool_name").as_string(), "Write");
  ASSERT_EQ(r->files.size(), 1u);
  EXPECT_EQ(r->files[0].path, "src/x.cpp");
  EXPECT_EQ(r->files[0].content, "int x;\n");

  // Minimal: no project (the default), no files, null files.
  auto minimal = HookRequestFromJson(Parse(R"({"event":"Stop","input":{}})"));
  ASSERT_TRUE(minimal.ok()) << minimal.status().message();
  EXPECT_EQ(minimal->project, "");
  EXPECT_TRUE(minimal->files.empty());
  EXPECT_TRUE(HookRequestFromJson(Parse(R"({"event":"Stop","input":{},"files":null})")).ok());
}

TEST(HooksRequestJson, RoundTrip) {
  HookRequest in;
  in.event = "PreToolUse";
  in.project = "repo";
  in.input = json::object{{"session_id", "abc"}, {"tool_name", "Edit"}};
  in.files = {{"src/a.cpp", ""}, {"src/b.cpp", "int b;\n"}};
  auto out = HookRequestFromJson(json::value(ToJson(in)));
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(out->event, in.event);
  EXPECT_EQ(out->project, in.project);
  EXPECT_EQ(out->input, in.input);
  ASSERT_EQ(out->files.size(), 2u);
  EXPECT_EQ(out->files[1].path, "src/b.cpp");
  EXPECT_EQ(out->files[1].content, "int b;\n");
}

TEST(HooksRequestJson, Rejected) {
  json::array seventeen;
  for (int i = 0; i < 17; ++i) {
    seventeen.push_back(json::object{{"path", "f" + std::to_string(i)}, {"content", ""}});
  }
  json::object too_many{{"event", "PostToolUse"}, {"input", json::object{}}, {"files", seventeen}};
  json::object bad_utf8{
      {"event", "PostToolUse"},
      {"input", json::object{}},
      {"files", json::array{json::object{{"path", "a"}, {"content", "caf\xe9"}}}}};
  json::object long_path{
      {"event", "PostToolUse"},
      {"input", json::object{}},
      {"files", json::array{json::object{{"path", std::string(4097, 'p')}, {"content", ""}}}}};
  json::object long_project{
      {"event", "Stop"}, {"input", json::object{}}, {"project", std::string(201, 'p')}};
  std::vector<std::pair<std::string, json::value>> cases = {
      {"array body", Parse("[]")},
      {"string body", Parse("\"Stop\"")},
      {"no event", Parse(R"({"input":{}})")},
      {"unknown event", Parse(R"({"event":"Frobnicate","input":{}})")},
      {"event in lower case", Parse(R"({"event":"stop","input":{}})")},
      {"event a number", Parse(R"({"event":1,"input":{}})")},
      {"no input", Parse(R"({"event":"Stop"})")},
      {"input an array", Parse(R"({"event":"Stop","input":[]})")},
      {"input a string", Parse(R"({"event":"Stop","input":"{}"})")},
      {"input null", Parse(R"({"event":"Stop","input":null})")},
      {"project a number", Parse(R"({"event":"Stop","input":{},"project":5})")},
      {"project too long", long_project},
      {"files an object", Parse(R"({"event":"Stop","input":{},"files":{}})")},
      {"files of strings", Parse(R"({"event":"Stop","input":{},"files":["a"]})")},
      {"file without path", Parse(R"({"event":"Stop","input":{},"files":[{"content":"x"}]})")},
      {"file path empty",
       Parse(R"({"event":"Stop","input":{},"files":[{"path":"","content":""}]})")},
      {"file path a number", Parse(R"({"event":"Stop","input":{},"files":[{"path":3}]})")},
      {"17 files", too_many},
      {"content not UTF-8", bad_utf8},
      {"path over 4096 bytes", long_path},
      {"unknown field", Parse(R"({"event":"Stop","input":{},"extra":true})")},
  };
  for (const auto& [name, body] : cases) {
    auto r = HookRequestFromJson(body);
    EXPECT_FALSE(r.ok()) << name;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    }
  }
}

// ------------------------------------------------------------ PrepareHookRequest

class HooksPrepare : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(testing::TempDir());
    repo_ = root_ / "my-repo";
    fs::create_directories(repo_ / ".git");
    fs::create_directories(repo_ / "src" / "deep");
    plain_ = root_ / "plain-dir";
    fs::create_directories(plain_ / "sub");
  }
  static std::string Event(const fs::path& cwd, const std::string& tool = "",
                           const std::string& file_path = "") {
    json::object o{{"session_id", "s-1"},
                   {"transcript_path", "/tmp/t.jsonl"},
                   {"cwd", cwd.string()},
                   {"permission_mode", "default"}};
    if (!tool.empty()) {
      o["tool_name"] = tool;
      json::object ti{{"file_path", file_path}};
      if (tool == "NotebookEdit") ti = json::object{{"notebook_path", file_path}};
      o["tool_input"] = ti;
      o["tool_use_id"] = "toolu_1";
    }
    return json::serialize(o);
  }
  fs::path root_, repo_, plain_;
  ScopedEnv no_project_{"DEVSTREAM_PROJECT", nullptr};
};

TEST_F(HooksPrepare, RejectsUnknownEventsAndNonObjects) {
  for (const char* event : {"", "Frobnicate", "sessionstart", "SessionStart ", "Notification"}) {
    auto r = PrepareHookRequest(event, "{}");
    EXPECT_FALSE(r.ok()) << event;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << event;
      EXPECT_NE(r.status().message().find("SessionStart"), std::string::npos)
          << "the message lists the events: " << r.status().message();
    }
  }
  for (const char* input : {"", "   ", "{", "[]", "null", "42", "\"x\"", "{} {}", "{\"a\":}"}) {
    EXPECT_FALSE(PrepareHookRequest("Stop", input).ok()) << input;
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(PrepareHookRequest("Stop", "{\"a\":" + deep + "}").ok());
  for (auto event : HookEvents()) {
    auto r = PrepareHookRequest(event, "{}");
    EXPECT_TRUE(r.ok()) << event << ": " << r.status().message();
    if (r.ok()) {
      EXPECT_EQ(r->event, event);
    }
  }
  EXPECT_EQ(HookEvents().size(), 7u);
}

TEST_F(HooksPrepare, ProjectIsTheGitRootName) {
  for (const fs::path& cwd : {repo_, repo_ / "src", repo_ / "src" / "deep"}) {
    auto r = PrepareHookRequest("SessionStart", Event(cwd));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->project, "my-repo") << cwd;
    EXPECT_EQ(r->input.at("session_id").as_string(), "s-1");
    EXPECT_TRUE(r->files.empty());
  }
  // No git root above: the directory's own name.
  auto plain = PrepareHookRequest("SessionStart", Event(plain_ / "sub"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->project, "sub");
  EXPECT_EQ(FindProjectDir((plain_ / "sub").string()).root, fs::canonical(plain_ / "sub").string());
  // A .git file (worktrees, submodules) marks a root as well.
  fs::path worktree = root_ / "wt";
  WriteFile(worktree / ".git", "gitdir: /elsewhere/.git/worktrees/wt\n");
  fs::create_directories(worktree / "lib");
  auto wt = PrepareHookRequest("Stop", Event(worktree / "lib"));
  ASSERT_TRUE(wt.ok());
  EXPECT_EQ(wt->project, "wt");
  // DEVSTREAM_PROJECT overrides the directory.
  {
    ScopedEnv env("DEVSTREAM_PROJECT", "chosen");
    auto chosen = PrepareHookRequest("Stop", Event(repo_));
    ASSERT_TRUE(chosen.ok());
    EXPECT_EQ(chosen->project, "chosen");
  }
  // Root directory: no name (the default project).
  EXPECT_EQ(FindProjectDir("/").name, "");
}

TEST_F(HooksPrepare, PathsRelativeToTheRootAndContentsGathered) {
  WriteFile(repo_ / "src" / "x.cpp", "int x = 1;\n");
  WriteFile(repo_ / "src" / "deep" / "y.cpp", "int y = 2;\n");
  // Absolute path, cwd at the root.
  auto a = PrepareHookRequest("PostToolUse", Event(repo_, "Write", (repo_ / "src/x.cpp").string()));
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->files.size(), 1u);
  EXPECT_EQ(a->files[0].path, "src/x.cpp");
  EXPECT_EQ(a->files[0].content, "int x = 1;\n");
  // Relative path resolved against a cwd below the root.
  auto b = PrepareHookRequest("PostToolUse", Event(repo_ / "src", "Edit", "deep/y.cpp"));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->files.size(), 1u);
  EXPECT_EQ(b->files[0].path, "src/deep/y.cpp");
  EXPECT_EQ(b->files[0].content, "int y = 2;\n");
  // Dot segments are normalised.
  auto c = PrepareHookRequest(
      "PostToolUse", Event(repo_ / "src", "MultiEdit", (repo_ / "src/deep/../x.cpp").string()));
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->files.size(), 1u);
  EXPECT_EQ(c->files[0].path, "src/x.cpp");
  // NotebookEdit names the file with notebook_path.
  WriteFile(repo_ / "nb" / "a.ipynb", "{\"cells\": []}\n");
  auto nb = PrepareHookRequest("PostToolUse",
                               Event(repo_, "NotebookEdit", (repo_ / "nb/a.ipynb").string()));
  ASSERT_TRUE(nb.ok());
  ASSERT_EQ(nb->files.size(), 1u);
  EXPECT_EQ(nb->files[0].path, "nb/a.ipynb");
  // Outside the root: the absolute path stays.
  WriteFile(plain_ / "outside.txt", "outside\n");
  auto out =
      PrepareHookRequest("PostToolUse", Event(repo_, "Write", (plain_ / "outside.txt").string()));
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->files.size(), 1u);
  EXPECT_EQ(out->files[0].path, (plain_ / "outside.txt").lexically_normal().string());
  // A sibling directory whose name starts like the root's is outside too.
  fs::path sibling = root_ / "my-repo-2";
  WriteFile(sibling / "z.cpp", "int z;\n");
  auto sib = PrepareHookRequest("PostToolUse", Event(repo_, "Write", (sibling / "z.cpp").string()));
  ASSERT_TRUE(sib.ok());
  ASSERT_EQ(sib->files.size(), 1u);
  EXPECT_EQ(sib->files[0].path.front(), '/') << sib->files[0].path;
}

// Every recorded-shape fixture (tests/fixtures/hooks/) is an event the hook
// accepts, with the common fields Claude Code sends.
TEST_F(HooksPrepare, RecordedFixtures) {
  WriteFile(repo_ / "src" / "x.cpp", "int x = 1;\n");
  WriteFile(repo_ / "notebooks" / "analysis.ipynb", "{\"cells\": []}\n");
  std::set<std::string> events;
  for (const auto& entry :
       fs::directory_iterator(fs::path(DEVSTREAM_SOURCE_DIR) / "tests" / "fixtures" / "hooks")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().filename().string());
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto [from, to] : {std::pair<std::string, std::string>{"{{CWD}}", repo_.string()},
                            {"{{SESSION_ID}}", "abc-123"},
                            {"{{HOME}}", root_.string()}}) {
      for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
        text.replace(pos, from.size(), to);
      }
    }
    std::string stem = entry.path().stem().string();
    std::string event = stem.substr(0, stem.find('_'));
    events.insert(event);
    auto r = PrepareHookRequest(event, text);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->project, "my-repo");
    for (const char* field :
         {"session_id", "transcript_path", "cwd", "hook_event_name", "permission_mode"}) {
      ASSERT_TRUE(r->input.contains(field)) << field;
      EXPECT_TRUE(r->input.at(field).is_string()) << field;
    }
    EXPECT_EQ(r->input.at("hook_event_name").as_string(), event);
    if (stem == "PostToolUse_Write" || stem == "PostToolUse_Edit" ||
        stem == "PostToolUse_MultiEdit" || stem == "PreToolUse") {
      ASSERT_EQ(r->files.size(), 1u);
      EXPECT_EQ(r->files[0].path, "src/x.cpp");
    }
    if (stem == "PostToolUse_NotebookEdit") {
      ASSERT_EQ(r->files.size(), 1u);
      EXPECT_EQ(r->files[0].path, "notebooks/analysis.ipynb");
    }
  }
  std::set<std::string> all(HookEvents().begin(), HookEvents().end());
  EXPECT_EQ(events, all) << "a fixture for every event";
}

// The cwd Claude Code reports may reach the repository through a symlink
// (macOS: /tmp is /private/tmp; a linked checkout); the tool's file_path then
// uses the same unresolved prefix. The stored path is still relative.
TEST_F(HooksPrepare, PathsRelativeThroughASymlinkedCwd) {
  WriteFile(repo_ / "src" / "x.cpp", "int x = 1;\n");
  fs::path link = root_ / "linked-checkout";
  fs::create_directory_symlink(repo_, link);
  auto r = PrepareHookRequest("PostToolUse", Event(link, "Write", (link / "src/x.cpp").string()));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->project, "my-repo");
  ASSERT_EQ(r->files.size(), 1u);
  EXPECT_EQ(r->files[0].path, "src/x.cpp");
  auto pre =
      PrepareHookRequest("PreToolUse", Event(link / "src", "Edit", (link / "src/x.cpp").string()));
  ASSERT_TRUE(pre.ok());
  ASSERT_EQ(pre->files.size(), 1u);
  EXPECT_EQ(pre->files[0].path, "src/x.cpp");
}

TEST_F(HooksPrepare, WhichContentsAreRead) {
  WriteFile(repo_ / "src" / "x.cpp", "int x = 1;\n");
  WriteFile(repo_ / "node_modules" / "m" / "i.js", "module.exports = 1;\n");
  WriteFile(repo_ / ".env", "A=1\n");
  WriteFile(repo_ / "blob.dat", std::string("ab\0cd", 5));
  WriteFile(repo_ / "latin1.txt", "caf\xe9\n");
  const size_t max_bytes = HookSettings{}.chunk_bytes * HookSettings{}.max_chunks;
  WriteFile(repo_ / "huge.txt", std::string(max_bytes + 1, 'a'));
  WriteFile(repo_ / "limit.txt", std::string(max_bytes, 'b'));
  auto files = [&](const std::string& event, const std::string& tool, const std::string& rel) {
    auto r = PrepareHookRequest(event, Event(repo_, tool, (repo_ / rel).string()));
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->files : std::vector<HookFile>{};
  };
  EXPECT_EQ(files("PostToolUse", "Write", "src/x.cpp").size(), 1u);
  EXPECT_TRUE(files("PostToolUse", "Write", "node_modules/m/i.js").empty());
  EXPECT_TRUE(files("PostToolUse", "Write", ".env").empty());
  EXPECT_TRUE(files("PostToolUse", "Write", "blob.dat").empty()) << "binary";
  EXPECT_TRUE(files("PostToolUse", "Write", "latin1.txt").empty()) << "not UTF-8";
  EXPECT_TRUE(files("PostToolUse", "Write", "huge.txt").empty()) << "over max_chunks chunks";
  auto limit = files("PostToolUse", "Write", "limit.txt");
  ASSERT_EQ(limit.size(), 1u) << "exactly max_chunks chunks is within the limit";
  EXPECT_EQ(limit[0].content.size(), max_bytes);
  EXPECT_TRUE(files("PostToolUse", "Write", "missing.cpp").empty());
  EXPECT_TRUE(files("PostToolUse", "Write", "src").empty()) << "a directory";
  EXPECT_TRUE(files("PostToolUse", "Bash", "src/x.cpp").empty()) << "not a file tool";
  EXPECT_TRUE(files("PostToolUse", "Read", "src/x.cpp").empty()) << "not a file tool";
  // PreToolUse names the file without reading it (even an ignored one).
  auto pre = files("PreToolUse", "Edit", "src/x.cpp");
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(pre[0].path, "src/x.cpp");
  EXPECT_EQ(pre[0].content, "");
  // Other events never gather files.
  EXPECT_TRUE(files("UserPromptSubmit", "Write", "src/x.cpp").empty());
  EXPECT_TRUE(files("PostToolUseFailure", "Write", "src/x.cpp").empty());
}

// ------------------------------------------------------------------ HookHandler

class HooksHandler : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = app::OpenServices(testing::TempDir() + "/hooks.db", 2);
    ASSERT_TRUE(s.ok()) << s.status().message();
    services_ = std::move(s).value();
  }
  HookHandler Handler(HookSettings settings = {}) {
    return HookHandler(
        HookServices{*services_->tasks, *services_->memory, *services_->sessions, *services_->db},
        settings);
  }
  static HookRequest Write(const std::string& path, const std::string& content,
                           const std::string& session = "s-1") {
    HookRequest r;
    r.event = "PostToolUse";
    r.project = "proj";
    r.input = json::object{{"session_id", session},
                           {"tool_name", "Write"},
                           {"tool_input", json::object{{"file_path", "/r/" + path}}}};
    r.files = {{path, content}};
    return r;
  }
  struct Row {
    int64_t id;
    std::string file_path, content;
    bool archived, superseded;
  };
  // Code memories of a file (its chunks too), oldest first.
  std::vector<Row> Rows(const std::string& path) {
    std::vector<Row> out;
    Status st = services_->db->Read([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("SELECT id, file_path, content, archived, superseded_by IS NOT NULL"
                            " FROM semantic_memory WHERE content_type = 'code' AND (file_path = ?"
                            " OR substr(file_path, 1, ?) = ?) ORDER BY id"));
      s.Bind(1, path).Bind(2, static_cast<int64_t>(path.size() + 1)).Bind(3, path + "#");
      for (;;) {
        DS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        out.push_back({s.Int(0), s.Text(1), s.Text(2), s.Int(3) != 0, s.Int(4) != 0});
      }
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.message();
    return out;
  }
  std::vector<Row> Live(const std::string& path) {
    std::vector<Row> out;
    for (auto& r : Rows(path)) {
      if (!r.archived && !r.superseded) out.push_back(std::move(r));
    }
    return out;
  }
  static std::vector<std::string> Paths(const std::vector<Row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.file_path);
    return out;
  }
  static std::string Joined(const std::vector<Row>& rows) {
    std::string out;
    for (const auto& r : rows) out += r.content;
    return out;
  }
  std::unique_ptr<app::Services> services_;
};

TEST_F(HooksHandler, ChunkBoundariesAtTheDefaultSize) {
  auto h = Handler();
  const size_t kChunk = 12 * 1024;
  // Exactly one chunk's worth: one memory under the plain path.
  std::string exact(kChunk, 'a');
  ASSERT_TRUE(h.Handle(Write("exact.txt", exact)).ok());
  EXPECT_EQ(Paths(Live("exact.txt")), std::vector<std::string>{"exact.txt"});
  EXPECT_EQ(Live("exact.txt")[0].content.size(), kChunk);
  // One byte more: two chunks, together the whole file.
  std::string over(kChunk + 1, 'b');
  ASSERT_TRUE(h.Handle(Write("over.txt", over)).ok());
  auto live = Live("over.txt");
  EXPECT_EQ(Paths(live), (std::vector<std::string>{"over.txt", "over.txt#chunk-2"}));
  EXPECT_EQ(Joined(live), over);
  for (const auto& r : live) EXPECT_LE(r.content.size(), kChunk);
}

TEST_F(HooksHandler, ChunksEndAtLineEndsAndNeverSplitCharacters) {
  HookSettings small;
  small.chunk_bytes = 100;
  small.max_chunks = 8;
  auto h = Handler(small);
  // Lines of 40 bytes: a chunk holds two whole lines (80 bytes), not 100.
  std::string lines;
  for (int i = 0; i < 5; ++i) lines += std::string(39, static_cast<char>('a' + i)) + "\n";
  ASSERT_TRUE(h.Handle(Write("lines.txt", lines)).ok());
  auto live = Live("lines.txt");
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(live[0].content.size(), 80u);
  EXPECT_EQ(live[1].content.size(), 80u);
  EXPECT_EQ(live[2].content.size(), 40u);
  EXPECT_EQ(Joined(live), lines);
  // A line longer than a chunk is cut at a character boundary (é is 2 bytes,
  // so 100 bytes would split one).
  std::string accents = "x";
  for (int i = 0; i < 120; ++i) accents += "\xc3\xa9";  // é
  ASSERT_TRUE(h.Handle(Write("accents.txt", accents)).ok());
  auto acc = Live("accents.txt");
  ASSERT_GE(acc.size(), 3u);
  for (const auto& r : acc) {
    EXPECT_TRUE(IsValidUtf8(r.content)) << r.file_path;
    EXPECT_LE(r.content.size(), 100u);
  }
  EXPECT_EQ(Joined(acc), accents);
  // 8 chunks (of distinct content: equal chunks would be deduplicated) is
  // the limit; more is not stored at all.
  ASSERT_TRUE(h.Handle(Write("limit.txt", Lines('l', 8, 100))).ok());
  EXPECT_EQ(Live("limit.txt").size(), 8u);
  ASSERT_TRUE(h.Handle(Write("toolarge.txt", Lines('t', 8, 100) + "t")).ok());
  EXPECT_TRUE(Rows("toolarge.txt").empty());
  // Whitespace only is not stored.
  ASSERT_TRUE(h.Handle(Write("blank.txt", " \n\t\n")).ok());
  EXPECT_TRUE(Rows("blank.txt").empty());
}

TEST_F(HooksHandler, ShrinkingArchivesStaleChunksAndGrowingRevivesNone) {
  HookSettings small;
  small.chunk_bytes = 100;
  auto h = Handler(small);
  auto text = [](char c, int n) { return Lines(c, n, 50); };  // 2 lines per chunk
  ASSERT_TRUE(h.Handle(Write("f.txt", text('a', 8))).ok());   // 4 chunks
  EXPECT_EQ(Paths(Live("f.txt")),
            (std::vector<std::string>{"f.txt", "f.txt#chunk-2", "f.txt#chunk-3", "f.txt#chunk-4"}));
  auto v1 = Rows("f.txt");
  ASSERT_TRUE(h.Handle(Write("f.txt", text('b', 4))).ok());  // 2 chunks
  EXPECT_EQ(Paths(Live("f.txt")), (std::vector<std::string>{"f.txt", "f.txt#chunk-2"}));
  EXPECT_EQ(Joined(Live("f.txt")), text('b', 4));
  for (const auto& r : Rows("f.txt")) {
    if (r.id == v1[0].id || r.id == v1[1].id) {
      EXPECT_TRUE(r.superseded) << r.file_path;
      EXPECT_FALSE(r.archived) << r.file_path;
    }
    if (r.id == v1[2].id || r.id == v1[3].id) {
      EXPECT_TRUE(r.archived) << r.file_path << " is stale";
      EXPECT_FALSE(r.superseded) << r.file_path;
    }
  }
  // Grows again to 3 chunks: a fresh chunk 3, the archived one stays archived.
  ASSERT_TRUE(h.Handle(Write("f.txt", text('c', 6))).ok());
  EXPECT_EQ(Paths(Live("f.txt")),
            (std::vector<std::string>{"f.txt", "f.txt#chunk-2", "f.txt#chunk-3"}));
  EXPECT_EQ(Joined(Live("f.txt")), text('c', 6));
  // A file whose name is a prefix of this one keeps its chunks.
  ASSERT_TRUE(h.Handle(Write("f.txt.bak", text('d', 4))).ok());
  ASSERT_TRUE(h.Handle(Write("f.txt", text('e', 1))).ok());
  EXPECT_EQ(Paths(Live("f.txt")), std::vector<std::string>{"f.txt"});
  EXPECT_EQ(Paths(Live("f.txt.bak")), (std::vector<std::string>{"f.txt.bak", "f.txt.bak#chunk-2"}));
}

// A file whose content equals another file's older snapshot (a copy, a
// template) is stored under its own path, and the other file's current
// snapshot stays current.
TEST_F(HooksHandler, IdenticalContentUnderAnotherPath) {
  auto h = Handler();
  ASSERT_TRUE(h.Handle(Write("a.txt", "shared header, version one\n")).ok());
  ASSERT_TRUE(h.Handle(Write("a.txt", "shared header, version two\n")).ok());
  ASSERT_EQ(Joined(Live("a.txt")), "shared header, version two\n");
  ASSERT_TRUE(h.Handle(Write("b.txt", "shared header, version one\n")).ok());
  EXPECT_EQ(Joined(Live("a.txt")), "shared header, version two\n")
      << "writing b.txt changed a.txt's current snapshot";
  EXPECT_EQ(Joined(Live("b.txt")), "shared header, version one\n") << "b.txt has no snapshot";
}

TEST_F(HooksHandler, EventsWithoutSessionOrWithUnknownOnes) {
  auto h = Handler();
  // No session_id: the file is still stored, linked to no session.
  HookRequest w = Write("nosession.txt", "int a;\n");
  w.input.erase("session_id");
  ASSERT_TRUE(h.Handle(w).ok());
  EXPECT_EQ(Live("nosession.txt").size(), 1u);
  // Ending a session never seen is fine; an unknown event is not.
  HookRequest end;
  end.event = "SessionEnd";
  end.project = "proj";
  end.input = json::object{{"session_id", "never-started"}};
  auto ended = h.Handle(end);
  EXPECT_TRUE(ended.ok()) << ended.status().message();
  HookRequest bogus;
  bogus.event = "Frobnicate";
  EXPECT_FALSE(h.Handle(bogus).ok());
  // PostToolUse for a tool that writes no file stores nothing.
  HookRequest read = Write("read.txt", "int r;\n");
  read.input["tool_name"] = "Read";
  ASSERT_TRUE(h.Handle(read).ok());
  EXPECT_TRUE(Rows("read.txt").empty());
  // Ignored paths that reach the handler (e.g. relayed) are skipped there too.
  ASSERT_TRUE(h.Handle(Write("node_modules/x/index.js", "module.exports = 2;\n")).ok());
  EXPECT_TRUE(Rows("node_modules/x/index.js").empty());
}

}  // namespace
}  // namespace ds::hooks
