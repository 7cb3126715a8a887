// Process logging: JSON lines (or plain text) through spdlog to stderr and/or
// a size-rotated file. Every line carries timestamp, level and message, plus
// the structured fields a caller passes (request_id, job_id, ...). Plain
// spdlog calls anywhere in the process come out in the same shape, because
// ConfigureLogging installs the formatted logger as spdlog's default.
// Callers must not pass secrets or memory contents as fields.
// Thread-safety: thread-safe (spdlog's _mt sinks); ConfigureLogging is called
// once at start, before other threads log.
#pragma once

#include <spdlog/common.h>

#include <string>
#include <string_view>

#include "core/json.h"
#include "core/status.h"

namespace ds {

struct LogOptions {
  std::string level = "info";   // trace debug info warn error off
  std::string format = "json";  // json | text
  bool to_stderr = true;
  std::string file;  // "" = no file
  size_t max_size_bytes = 10 << 20;
  size_t max_files = 5;
};

Status ConfigureLogging(const LogOptions& options);

// One event with structured fields.
void LogEvent(spdlog::level::level_enum level, std::string_view message,
              const json::object& fields = {});
inline void LogInfo(std::string_view m, const json::object& f = {}) {
  LogEvent(spdlog::level::info, m, f);
}
inline void LogWarn(std::string_view m, const json::object& f = {}) {
  LogEvent(spdlog::level::warn, m, f);
}
inline void LogError(std::string_view m, const json::object& f = {}) {
  LogEvent(spdlog::level::err, m, f);
}

// The line LogEvent writes (exposed for tests).
std::string FormatLogLine(const std::string& format, spdlog::level::level_enum level,
                          int64_t unix_millis, std::string_view message,
                          const json::object& fields);

}  // namespace ds
