#include "core/log.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>

#include "core/clock.h"

namespace ds {
namespace {

const char* LevelName(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

int64_t Millis(const spdlog::log_clock::time_point& t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string g_format = "json";  // set once by ConfigureLogging

// Formats plain spdlog messages (payload = the message) as log lines.
class LineFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = FormatLogLine(g_format, msg.level, Millis(msg.time),
                                     std::string_view(msg.payload.data(), msg.payload.size()), {});
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<LineFormatter>(); }
};

// Writes payloads that already are whole lines (from LogEvent).
class RawFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<RawFormatter>(); }
};

std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_raw;  // guarded by g_mu for replacement

std::shared_ptr<spdlog::logger> RawLogger() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_raw) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    g_raw = std::make_shared<spdlog::logger>("devstream.events", sink);
    g_raw->set_formatter(std::make_unique<RawFormatter>());
    g_raw->set_level(spdlog::level::info);
  }
  return g_raw;
}

}  // namespace

std::string FormatLogLine(const std::string& format, spdlog::level::level_enum level,
                          int64_t unix_millis, std::string_view message,
                          const json::object& fields) {
  if (format == "text") {
    std::string line =
        FormatTimestamp(unix_millis) + " " + LevelName(level) + " " + std::string(message);
    for (const auto& [k, v] : fields) {
      line += " " + std::string(k) + "=" +
              (v.is_string() ? std::string(v.as_string()) : ToJsonString(v));
    }
    return line + "\n";
  }
  json::object o{{"timestamp", FormatTimestamp(unix_millis)},
                 {"level", LevelName(level)},
                 {"message", message}};
  for (const auto& [k, v] : fields) {
    if (!o.contains(k)) o[k] = v;
  }
  return ToJsonString(o) + "\n";
}

Status ConfigureLogging(const LogOptions& o) {
  if (o.format != "json" && o.format != "text") {
    return Status::InvalidArgument("logging.format must be json or text");
  }
  std::vector<spdlog::sink_ptr> sinks;
  if (o.to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!o.file.empty()) {
    std::error_code ec;
    std::filesystem::path p(o.file);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          o.file, o.max_size_bytes, o.max_files));
    } catch (const spdlog::spdlog_ex& e) {
      return Status::InvalidArgument("logging.file " + o.file + " cannot be opened: " + e.what());
    }
  }
  auto level = spdlog::level::from_str(o.level);
  g_format = o.format;
  auto lines = std::make_shared<spdlog::logger>("devstream", sinks.begin(), sinks.end());
  lines->set_formatter(std::make_unique<LineFormatter>());
  lines->set_level(level);
  lines->flush_on(spdlog::level::warn);
  auto raw = std::make_shared<spdlog::logger>("devstream.events", sinks.begin(), sinks.end());
  raw->set_formatter(std::make_unique<RawFormatter>());
  raw->set_level(level);
  raw->flush_on(spdlog::level::info);
  spdlog::set_default_logger(lines);
  std::lock_guard<std::mutex> lock(g_mu);
  g_raw = raw;
  return Status::Ok();
}

void LogEvent(spdlog::level::level_enum level, std::string_view message,
              const json::object& fields) {
  auto logger = RawLogger();
  if (!logger->should_log(level)) return;
  std::string line = FormatLogLine(g_format, level, NowMillis(), message, fields);
  logger->log(level, "{}", line);
}

}  // namespace ds
