#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace ds::itest {

namespace {
// A sanitizer report in a child's output fails the running test: the child
// may survive it (LeakSanitizer reports at exit, and only a few tests check
// exit codes), so its exit status alone would hide the report.
void ExpectNoSanitizerReport(const std::string& output, const std::string& what) {
  size_t at = output.find("ERROR: AddressSanitizer");
  if (at == std::string::npos) at = output.find("ERROR: LeakSanitizer");
  if (at == std::string::npos) at = output.find("ERROR: UndefinedBehaviorSanitizer");
  // UBSan: "file.cpp:12:5: runtime error: ..." (not the words in a log line).
  for (size_t ub = output.find(": runtime error: ");
       at == std::string::npos && ub != std::string::npos;
       ub = output.find(": runtime error: ", ub + 1)) {
    size_t line = output.rfind('\n', ub);
    std::string head = output.substr(line == std::string::npos ? 0 : line + 1,
                                     ub - (line == std::string::npos ? 0 : line + 1));
    if (head.find(".cpp:") != std::string::npos || head.find(".h:") != std::string::npos ||
        head.find(".hpp:") != std::string::npos) {
      at = ub;
    }
  }
  if (at == std::string::npos) return;
  size_t from = at > 300 ? at - 300 : 0;
  ADD_FAILURE() << what << " printed a sanitizer report:\n" << output.substr(from, 4000);
}
}  // namespace

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string ReadUntilClose(int fd, int timeout_ms) {
  std::string out;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

namespace {

HttpResult ParseResponse(const std::string& raw) {
  HttpResult r;
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.rfind("HTTP/1.1 ", 0) != 0) return r;
  r.status = std::atoi(raw.c_str() + 9);
  std::istringstream head(raw.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  r.body = raw.substr(head_end + 4);
  return r;
}

// The environment of this process with `env` set on top.
std::vector<std::string> BuildEnv(const EnvVars& env) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    std::string name = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& [k, v] : env) overridden |= k == name;
    if (!overridden) out.push_back(std::move(kv));
  }
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// argv/envp style: pointers into `v`, null-terminated.
std::vector<char*> Pointers(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

json::value HttpResult::Json() const {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return nullptr;
  return v;
}

std::string HttpResult::Header(const std::string& lower) const {
  auto it = headers.find(lower);
  return it == headers.end() ? "" : it->second;
}

HttpResult Http(int port, const std::string& method, const std::string& target,
                const std::string& body,
                const std::vector<std::pair<std::string, std::string>>& headers,
                bool json_content_type, int timeout_ms) {
  bool own_host = false;  // a caller's Host replaces the default
  for (const auto& [k, v] : headers) own_host |= k == "Host" || k == "host";
  std::string req = method + " " + target + " HTTP/1.1\r\n" +
                    (own_host ? "" : "Host: 127.0.0.1\r\n") + "Connection: close\r\n";
  if (!body.empty() && json_content_type) req += "Content-Type: application/json\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PATCH") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  return ParseResponse(RawExchange(port, req, timeout_ms));
}

std::string RawExchange(int port, const std::string& bytes, int timeout_ms) {
  int fd = Connect(port);
  if (fd < 0) return "";
  SendAll(fd, bytes);
  std::string out = ReadUntilClose(fd, timeout_ms);
  close(fd);
  return out;
}

ServerProcess::ServerProcess(std::string db_path, std::vector<std::string> extra_args, EnvVars env)
    : db_path_(std::move(db_path)), extra_args_(std::move(extra_args)), env_(std::move(env)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop();
}

bool ServerProcess::Start() {
  // Everything the child needs is built before fork (no allocation after it).
  std::vector<std::string> args{DEVSTREAM_BINARY, "serve", "--port", "0", "--db", db_path_};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<std::string> envs = BuildEnv(env_);
  std::vector<char*> argv = Pointers(args), envp = Pointers(envs);
  std::string log_path = this->log_path();
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return false;
  pid_ = fork();
  if (pid_ == 0) {
    // Die with the test process, and keep stderr out of CTest's pipe (an
    // orphan holding it would hang the run); the log stays next to the db.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) dup2(log, STDERR_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  // Read the "listening on http://127.0.0.1:PORT" line (bounded wait).
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out_pipe[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[512];
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    auto pos = seen.find("http://127.0.0.1:");
    if (pos != std::string::npos && seen.find('\n', pos) != std::string::npos) {
      port_ = std::atoi(seen.c_str() + pos + std::strlen("http://127.0.0.1:"));
      break;
    }
  }
  close(out_pipe[0]);
  return port_ > 0;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  int code = -1;
  bool exited = false;
  for (int i = 0; i < 300 && !exited; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited = true;
      code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  ExpectNoSanitizerReport(ReadFile(log_path()), "the server on " + db_path_);
  return code;
}

BackgroundProcess::BackgroundProcess(std::vector<std::string> args, std::string log_path,
                                     EnvVars env)
    : args_(std::move(args)), log_path_(std::move(log_path)), env_(std::move(env)) {}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0) Kill();
}

bool BackgroundProcess::Start(const std::string& ready, int timeout_ms) {
  if (pid_ > 0) return false;
  std::vector<std::string> args{DEVSTREAM_BINARY};
  args.insert(args.end(), args_.begin(), args_.end());
  std::vector<std::string> envs = BuildEnv(env_);
  std::vector<char*> argv = Pointers(args), envp = Pointers(envs);
  std::string out_path = log_path_ + ".out";
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    return false;
  }
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out);
  close(err);
  if (pid_ < 0) return false;
  if (ready.empty()) return true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Stdout().find(ready) != std::string::npos) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int BackgroundProcess::Stop(int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ExpectNoSanitizerReport(ReadFile(log_path_), "devstream " + (args_.empty() ? "" : args_[0]));
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return -1;
}

void BackgroundProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  ExpectNoSanitizerReport(ReadFile(log_path_), "devstream " + (args_.empty() ? "" : args_[0]));
}

std::string BackgroundProcess::Stdout() const {
  return ReadFile(log_path_ + ".out");
}

std::string BackgroundProcess::Stderr() const {
  return ReadFile(log_path_);
}

CommandResult RunCli(const std::vector<std::string>& args) {
  return RunCli(args, {});
}

std::string CreateApiKey(const std::string& db, const std::string& name, const std::string& scopes,
                         const std::string& project, std::string* output) {
  std::vector<std::string> args = {"apikey", "create", "--name", name,    "--scopes",
                                   scopes,   "--db",   db,       "--json"};
  if (!project.empty()) {
    args.push_back("--project");
    args.push_back(project);
  }
  auto r = RunCli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (output) *output = r.out + r.err;
  auto parsed = json::parse(r.out);
  return std::string(parsed.at("key").as_string());
}

CommandResult RunCli(const std::vector<std::string>& args, const EnvVars& env, int timeout_ms) {
  CliOptions options;
  options.env = env;
  options.timeout_ms = timeout_ms;
  return RunCliWith(args, options);
}

CommandResult RunCliWith(const std::vector<std::string>& args, const CliOptions& options) {
  // A child that exits before reading all its input must not kill us with
  // SIGPIPE (the child gets the default disposition back before exec).
  static const bool sigpipe_ignored = [] {
    signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)sigpipe_ignored;
  CommandResult r;
  std::vector<std::string> all{DEVSTREAM_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<std::string> envs = BuildEnv(options.env);
  std::vector<char*> argv = Pointers(all), envp = Pointers(envs);
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return r;
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return r;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) close(fd);
    return r;
  }
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_DFL);
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    if (cwd && chdir(cwd) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  int in_fd = in_pipe[1];
  fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
  size_t written = 0;
  int held_fd = -1;  // stdin kept open after the input (close_stdin = false)
  auto input_done = [&] {
    if (options.close_stdin) {
      close(in_fd);
    } else {
      held_fd = in_fd;
    }
    in_fd = -1;
  };
  if (options.input.empty()) input_done();
  // All pipes at once, so a chatty stderr cannot block the child and a
  // large input cannot deadlock against a full stdout.
  auto deadline = start + std::chrono::milliseconds(options.timeout_ms);
  bool timed_out = false;
  pollfd fds[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    fds[2].fd = in_fd;
    fds[2].revents = 0;
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int n = poll(fds, 3, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
    if (in_fd >= 0 && fds[2].revents != 0) {
      size_t chunk = std::min<size_t>(options.input.size() - written, 65536);
      ssize_t put = write(in_fd, options.input.data() + written, chunk);
      if (put > 0) {
        written += static_cast<size_t>(put);
        if (written == options.input.size()) input_done();
      } else if (put < 0 && (errno == EAGAIN || errno == EINTR)) {
        // not writable after all; poll again
      } else {
        close(in_fd);  // the child stopped reading (EPIPE): the input ends here
        in_fd = -1;
      }
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd >= 0) close(fds[i].fd);
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  if (timed_out) {
    kill(pid, SIGKILL);
    r.err += "\n[harness: killed after " + std::to_string(options.timeout_ms) + " ms]";
  }
  waitpid(pid, &status, 0);
  if (held_fd >= 0) close(held_fd);
  r.elapsed_ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
  r.exit_code = !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  ExpectNoSanitizerReport(r.err, "devstream " + (args.empty() ? "" : args[0]));
  return r;
}

namespace {
// Every directory TempDir() made in this process. When all of the process's
// tests passed they are removed at the end (ctest runs each test in its own
// process); after a failure they stay, as evidence.
std::mutex temp_dirs_mu;
std::vector<std::string>* temp_dirs = new std::vector<std::string>();

class TempDirJanitor : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!::testing::UnitTest::GetInstance()->Passed()) return;
    std::lock_guard<std::mutex> lock(temp_dirs_mu);
    for (const auto& dir : *temp_dirs) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    temp_dirs->clear();
  }
};
[[maybe_unused]] ::testing::Environment* const temp_dir_janitor =
    ::testing::AddGlobalTestEnvironment(new TempDirJanitor);
}  // namespace

std::string TempDir() {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() /
             ("ds_itest_" + std::to_string(getpid()) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  std::lock_guard<std::mutex> lock(temp_dirs_mu);
  temp_dirs->push_back(dir.string());
  return dir.string();
}

std::string DumpDatabase(const std::string& db_path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "<cannot open>";
  }
  sqlite3_busy_timeout(db, 5000);
  std::vector<std::string> tables;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                     "'sqlite_%' AND name NOT LIKE 'memory_fts_%'"
                     " AND name NOT IN ('jobs', 'workers', 'job_schedules') ORDER BY name",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  for (const auto& t : tables) {
    out += "## " + t + "\n";
    std::string sql = "SELECT * FROM \"" + t + "\" ORDER BY 1";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) continue;
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const unsigned char* v = sqlite3_column_text(st, i);
        out += v ? reinterpret_cast<const char*>(v) : "NULL";
        out += "|";
      }
      out += "\n";
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

std::vector<std::vector<std::string>> QueryDatabase(const std::string& db_path,
                                                    const std::string& sql) {
  TestDb db(db_path, /*read_only=*/true, /*busy_timeout_ms=*/5000);
  if (!db.ok()) return {{"<error: cannot open " + db_path + ">"}};
  return db.Rows(sql);
}

TestDb::TestDb(const std::string& path, bool read_only, int busy_timeout_ms) {
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    sqlite3_close(db_);
    db_ = nullptr;
  }
  if (db_) sqlite3_busy_timeout(db_, busy_timeout_ms);
}

TestDb::~TestDb() {
  sqlite3_close(db_);
}

std::string TestDb::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK) return "";
  std::string msg = err ? err : "error";
  sqlite3_free(err);
  return msg;
}

std::vector<std::vector<std::string>> TestDb::Rows(const std::string& sql) {
  std::vector<std::vector<std::string>> out;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    return {{std::string("<error: ") + sqlite3_errmsg(db_) + ">"}};
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* v = sqlite3_column_text(st, i);
      row.emplace_back(v ? reinterpret_cast<const char*>(v) : "NULL");
    }
    out.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) out = {{std::string("<error: ") + sqlite3_errmsg(db_) + ">"}};
  sqlite3_finalize(st);
  return out;
}

std::string TestDb::Scalar(const std::string& sql) {
  auto rows = Rows(sql);
  return rows.empty() || rows[0].empty() ? "" : rows[0][0];
}

}  // namespace ds::itest
