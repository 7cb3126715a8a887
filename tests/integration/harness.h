// Integration-test harness: runs the real devstream binary (as a server on an
// ephemeral port, or as a one-shot CLI command) against a temporary SQLite
// file, and talks HTTP/1.1 to it over loopback with a minimal blocking client.
// Not thread-safe except Http(), which opens its own connection per call.
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace ds::itest {

namespace json = boost::json;

struct HttpResult {
  int status = 0;  // 0 when the connection failed or closed without a response
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  json::value Json() const;
  std::string Header(const std::string& lower) const;
};

// Sends one request on a fresh connection (Connection: close).
HttpResult Http(int port, const std::string& method, const std::string& target,
                const std::string& body = "",
                const std::vector<std::pair<std::string, std::string>>& headers = {},
                bool json_content_type = true);
// Sends raw bytes and returns whatever the server answers before closing.
std::string RawExchange(int port, const std::string& bytes, int timeout_ms = 5000);

class ServerProcess {
 public:
  explicit ServerProcess(std::string db_path, std::vector<std::string> extra_args = {});
  ~ServerProcess();
  // Starts the server and waits for its "listening" line; false on failure.
  bool Start();
  // SIGTERM and wait; returns the exit status (or -1).
  int Stop();
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& db_path() const { return db_path_; }

 private:
  std::string db_path_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs `devstream args...` to completion.
CommandResult RunCli(const std::vector<std::string>& args);

// A fresh temporary directory.
std::string TempDir();
// Every row of every table, in a stable order: equal dumps mean equal data.
std::string DumpDatabase(const std::string& db_path);

}  // namespace ds::itest
