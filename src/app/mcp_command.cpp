#include "app/mcp_command.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "app/cli_support.h"
#include "app/services.h"
#include "hooks/project_dir.h"
#include "mcp/devstream_tools.h"
#include "mcp/stdio_transport.h"

namespace ds::app {
namespace {

constexpr char kDefaultServerUrl[] = "http://127.0.0.1:8000";

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

}  // namespace

const std::string& McpInstructions() {
  static const std::string text =
      "DevStream keeps this project's tasks and memory across sessions. Before starting work, "
      "call devstream_search_memory or devstream_get_context with what you are about to do. "
      "Take work with devstream_next_task and finish it with devstream_update_task (status "
      "completed, note = the outcome). Store decisions, errors with their fixes and learnings "
      "with devstream_store_memory.";
  return text;
}

int RunMcp(const McpOptions& options) {
  // stdout is the protocol channel: every log line goes to stderr.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("devstream-mcp-stderr"));
  std::ios::sync_with_stdio(false);
  std::string project = options.project;
  if (project.empty()) project = EnvOr("DEVSTREAM_PROJECT", "");
  if (project.empty()) {
    std::error_code ec;
    project = hooks::FindProjectDir(std::filesystem::current_path(ec).string()).name;
  }
  std::string url = options.url.empty() ? EnvOr("DEVSTREAM_URL", "") : options.url;
  const char* db_env = std::getenv("DEVSTREAM_DATABASE_PATH");
  bool db_named = !options.db_path.empty() || (db_env && *db_env);
  if (url.empty() && !db_named && mcp::ServerReachable(kDefaultServerUrl, 300)) {
    url = kDefaultServerUrl;
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (!url.empty()) {
    std::cerr << "devstream mcp: relaying to " << url << "/mcp (project " << project << ")\n";
    mcp::RunStdioRelay(url, std::cin, std::cout, project, EnvOr("DEVSTREAM_API_KEY", ""));
    return 0;
  }
  auto services = OpenServices(options.db_path);
  if (!services.ok()) return Fail(services.status());
  Services& sv = **services;
  if (Status st = sv.memory->LoadIndex(memory::MemoryService::Indexes::kVectorsAndKeywords);
      !st.ok()) {
    return Fail(st);
  }
  mcp::ToolServices tool_services{*sv.tasks, *sv.memory, *sv.workflow};
  mcp::ToolRegistry tools = mcp::DevStreamTools(tool_services);
  mcp::ServerInfo info;
  info.version = DEVSTREAM_VERSION;
  info.instructions = McpInstructions();
  mcp::McpServer server(tools, info);
  std::cerr << "devstream mcp: serving " << sv.db->path() << " on stdio (project " << project
            << ")\n";
  mcp::RunStdio(server, std::cin, std::cout, project);
  return 0;
}

}  // namespace ds::app
