// Integration-test harness: runs the real devstream binary (as a server on an
// ephemeral port, or as a one-shot CLI command) against a temporary SQLite
// file, and talks HTTP/1.1 to it over loopback with a minimal blocking client.
// Not thread-safe except Http(), which opens its own connection per call, and
// RunCli()/RunCliWith(), which may run in several threads at once (every
// descriptor the harness opens is close-on-exec, so children never hold
// another's pipes).
#pragma once

#include <sys/types.h>

#include <sqlite3.h>

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

// Sends one request on a fresh connection (Connection: close) and waits at
// most timeout_ms for the whole answer.
HttpResult Http(int port, const std::string& method, const std::string& target,
                const std::string& body = "",
                const std::vector<std::pair<std::string, std::string>>& headers = {},
                bool json_content_type = true, int timeout_ms = 5000);
// Raw sockets, for requests the HTTP helpers cannot make (half-sent bodies):
// a blocking loopback connection (-1 when refused), a full send, and
// everything received until the peer closes or timeout_ms passes.
int Connect(int port);
bool SendAll(int fd, const std::string& data);
std::string ReadUntilClose(int fd, int timeout_ms);

// Sends raw bytes and returns whatever the server answers before closing.
std::string RawExchange(int port, const std::string& bytes, int timeout_ms = 5000);

// Environment variables set (or overridden) for a child process.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

class ServerProcess {
 public:
  explicit ServerProcess(std::string db_path, std::vector<std::string> extra_args = {},
                         EnvVars env = {});
  ~ServerProcess();
  // Starts the server and waits for its "listening" line; false on failure.
  bool Start();
  // SIGTERM and wait; returns the exit status (or -1).
  int Stop();
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& db_path() const { return db_path_; }
  // Where the server's stderr goes (shared by servers on the same database).
  std::string log_path() const { return db_path_ + ".server.log"; }

 private:
  std::string db_path_;
  std::vector<std::string> extra_args_;
  EnvVars env_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// A long-running `devstream args...` other than a server (e.g. `worker`):
// stdout goes to log_path + ".out" (watched for a ready line), stderr to
// log_path. The process dies with the thread that started it; the destructor
// kills it if it still runs.
class BackgroundProcess {
 public:
  BackgroundProcess(std::vector<std::string> args, std::string log_path, EnvVars env = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  // Starts it and waits (at most timeout_ms) until its stdout contains
  // `ready` (no wait when empty); false when it did not start or exited.
  bool Start(const std::string& ready, int timeout_ms = 30000);
  // SIGTERM, then waits at most timeout_ms (SIGKILL after). Returns the exit
  // status, or -1 when it was killed by a signal or did not exit in time.
  int Stop(int timeout_ms = 15000);
  // SIGKILL and reap.
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  std::vector<std::string> args_;
  std::string log_path_;
  EnvVars env_;
  pid_t pid_ = -1;
};

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
  long elapsed_ms = 0;  // wall time from start to exit
};
// Runs `devstream args...` to completion.
CommandResult RunCli(const std::vector<std::string>& args);
// The same with extra environment variables; killed (exit_code -1, a note
// appended to err) when it runs longer than timeout_ms.
CommandResult RunCli(const std::vector<std::string>& args, const EnvVars& env,
                     int timeout_ms = 120000);

// Creates an API key with `devstream apikey create --json` on `db` and returns
// the key (shown once); the CLI's whole output goes to *output when given.
// Fails the calling test when the CLI does.
std::string CreateApiKey(const std::string& db, const std::string& name, const std::string& scopes,
                         const std::string& project = "", std::string* output = nullptr);

// How RunCliWith runs the command.
struct CliOptions {
  EnvVars env;
  std::string input;        // written to the child's stdin
  bool close_stdin = true;  // false: stdin stays open (no EOF) until the child exits
  std::string cwd;          // the child's working directory ("" = this process's)
  int timeout_ms = 120000;  // killed after this (exit_code -1, a note appended to err)
};
// Runs `devstream args...` to completion with stdin input (written while
// stdout and stderr are drained, so large inputs cannot deadlock; a child
// that stops reading early just ends the input).
CommandResult RunCliWith(const std::vector<std::string>& args, const CliOptions& options);

// A fresh temporary directory.
std::string TempDir();
// Every row of every table, in a stable order: equal dumps mean equal data.
// Leaves out the task engine's own bookkeeping (jobs, workers,
// job_schedules), which an embedded worker changes on its own schedule.
std::string DumpDatabase(const std::string& db_path);
// The rows of one read-only query (NULL as "NULL"); a single row holding
// "<error: …>" when the query fails.
std::vector<std::vector<std::string>> QueryDatabase(const std::string& db_path,
                                                    const std::string& sql);

// A connection of the test's own to an existing database (to hold the write
// lock, run FTS5's integrity-check, or read several queries in one
// transaction). Not thread-safe.
class TestDb {
 public:
  explicit TestDb(const std::string& path, bool read_only = false, int busy_timeout_ms = 10000);
  ~TestDb();
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;
  bool ok() const { return db_ != nullptr; }
  // "" on success, else the error message.
  std::string Exec(const std::string& sql);
  // Every row (NULL as "NULL"); one row "<error: …>" on failure.
  std::vector<std::vector<std::string>> Rows(const std::string& sql);
  // The first column of the first row ("" when there is none).
  std::string Scalar(const std::string& sql);

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace ds::itest
