#include "app/hook_command.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>

#include "app/services.h"
#include "core/clock.h"
#include "core/http_client.h"
#include "hooks/hook_handler.h"

namespace ds::app {
namespace {

constexpr char kDefaultServerUrl[] = "http://127.0.0.1:8000";
constexpr size_t kMaxInputBytes = 8 << 20;
constexpr int64_t kDefaultBudgetMs = 4000;

constexpr uintmax_t kMaxLogBytes = 1 << 20;

}  // namespace

// One line per failure; the log is rotated to "<log>.1" past 1 MiB.
void LogHookFailure(const std::string& event, const std::string& message) {
  std::error_code ec;
  std::filesystem::path path(HookLogPath());
  std::filesystem::create_directories(path.parent_path(), ec);
  if (std::filesystem::file_size(path, ec) > kMaxLogBytes && !ec) {
    std::filesystem::rename(path, path.string() + ".1", ec);
  }
  std::string line = message.substr(0, 2000);
  for (char& ch : line) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  std::ofstream out(path, std::ios::app);
  if (out) out << NowTimestamp() << " hook " << event << ": " << line << "\n";
}

namespace {

void Log(const std::string& event, const std::string& message) {
  LogHookFailure(event, message);
}

enum class RelayOutcome { kAnswered, kUnreachable, kFailed };

// POSTs the request to the server; kUnreachable when nothing listens there.
RelayOutcome Relay(const std::string& base_url, const hooks::HookRequest& request,
                   int64_t timeout_ms, std::optional<json::object>* output, std::string* error) {
  HttpCall call;
  call.method = "POST";
  call.url = base_url + "/api/v1/hooks/" + request.event;
  call.body = ToJsonString(hooks::ToJson(request));
  call.headers = {"Content-Type: application/json"};
  if (const char* key = std::getenv("DEVSTREAM_API_KEY"); key && *key) {
    call.headers.push_back(std::string("Authorization: Bearer ") + key);
  }
  call.connect_timeout_ms = 300;
  call.timeout_ms = static_cast<long>(std::max<int64_t>(100, timeout_ms));
  HttpReply r = HttpRequest(call);
  const std::string& reply = r.body;
  long status = r.status;
  if (r.unreachable) {
    *error = r.error;
    return RelayOutcome::kUnreachable;
  }
  if (!r.error.empty()) {
    *error = "server " + base_url + ": " + r.error;
    return RelayOutcome::kFailed;
  }
  // Something else listens there, or a server without the hook route, or
  // one that is down behind a proxy: do the work locally instead.
  if (status == 404 || status == 405 || status == 413 || status == 501 || status == 502 ||
      status == 503 || status == 504) {
    *error = "server " + base_url + " answered HTTP " + std::to_string(status);
    return RelayOutcome::kUnreachable;
  }
  if (status != 200) {
    *error = "server " + base_url + " answered HTTP " + std::to_string(status) + ": " +
             reply.substr(0, 500);
    return RelayOutcome::kFailed;
  }
  auto parsed = ParseJson(reply, 64);
  if (!parsed.ok() || !parsed->is_object()) {
    *error = "server " + base_url + " answered something that is not JSON";
    return RelayOutcome::kUnreachable;
  }
  const auto* out = parsed->as_object().if_contains("output");
  if (out && out->is_object()) *output = out->as_object();
  return RelayOutcome::kAnswered;
}

// Runs the hook in this process on the database.
Status RunLocal(const hooks::HookRequest& request, const std::string& db_path,
                std::optional<json::object>* output) {
  DS_ASSIGN_OR_RETURN(auto services, OpenServices(db_path, 2));
  bool searches = request.event == "SessionStart" || request.event == "UserPromptSubmit" ||
                  request.event == "PreToolUse";
  if (searches) DS_RETURN_IF_ERROR(services->memory->LoadIndex());
  hooks::HookHandler handler(
      hooks::HookServices{*services->tasks, *services->memory, *services->sessions, *services->db});
  DS_ASSIGN_OR_RETURN(*output, handler.Handle(request));
  return Status::Ok();
}

}  // namespace

std::string HookLogPath() {
  if (const char* p = std::getenv("DEVSTREAM_HOOK_LOG"); p && *p) return p;
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s) {
    return std::string(s) + "/devstream/hooks.log";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/state/devstream/hooks.log";
}

int RunHook(const HookOptions& options) {
  auto start = std::chrono::steady_clock::now();
  int64_t budget_ms = kDefaultBudgetMs;
  if (const char* b = std::getenv("DEVSTREAM_HOOK_TIMEOUT_MS"); b && *b) {
    char* end = nullptr;
    long v = std::strtol(b, &end, 10);
    if (*end == '\0' && v >= 50 && v <= 600000) budget_ms = v;
  }
  auto deadline = start + std::chrono::milliseconds(budget_ms);

  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::optional<json::object> output;
  };
  auto shared = std::make_shared<Shared>();
  std::string event = options.event;
  HookOptions opts = options;
  std::thread worker([shared, opts, deadline]() {
    std::optional<json::object> output;
    try {
      std::string input;
      char buf[65536];
      while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
        input.append(buf, static_cast<size_t>(std::cin.gcount()));
        if (input.size() > kMaxInputBytes) break;
      }
      if (input.size() > kMaxInputBytes) {
        Log(opts.event, "event JSON larger than 8 MiB; ignored");
      } else if (auto request = hooks::PrepareHookRequest(opts.event, input); !request.ok()) {
        Log(opts.event, request.status().message());
      } else {
        std::string url = opts.url;
        if (url.empty()) {
          const char* env = std::getenv("DEVSTREAM_URL");
          if (env && *env) url = env;
        }
        const char* db_env = std::getenv("DEVSTREAM_DATABASE_PATH");
        bool db_named = !opts.db_path.empty() || (db_env && *db_env);
        if (url.empty() && !db_named) url = kDefaultServerUrl;
        while (!url.empty() && url.back() == '/') url.pop_back();
        bool local = url.empty();
        if (!local) {
          std::string error;
          auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
                               deadline - std::chrono::steady_clock::now())
                               .count();
          switch (Relay(url, *request, remaining, &output, &error)) {
            case RelayOutcome::kAnswered:
              break;
            case RelayOutcome::kUnreachable:
              local = true;  // no server: do the work here
              break;
            case RelayOutcome::kFailed:
              Log(opts.event, error);
              break;
          }
        }
        if (local) {
          if (Status st = RunLocal(*request, opts.db_path, &output); !st.ok()) {
            Log(opts.event, st.message());
            output.reset();
          }
        }
      }
    } catch (const std::exception& e) {
      Log(opts.event, std::string("internal error: ") + e.what());
      output.reset();
    }
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->output = std::move(output);
    shared->done = true;
    shared->cv.notify_all();
  });

  std::unique_lock<std::mutex> lock(shared->mu);
  if (!shared->cv.wait_until(lock, deadline, [&] { return shared->done; })) {
    Log(event, "gave up after the " + std::to_string(budget_ms) +
                   " ms budget (DEVSTREAM_HOOK_TIMEOUT_MS); no output");
    std::cout.flush();
    std::_Exit(0);  // the worker thread may be stuck in I/O; do not wait for it
  }
  std::optional<json::object> output = std::move(shared->output);
  lock.unlock();
  worker.join();
  if (output) std::cout << ToJsonString(*output) << "\n";
  std::cout.flush();
  return 0;
}

}  // namespace ds::app
