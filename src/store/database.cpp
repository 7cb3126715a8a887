#include "store/database.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace ds {
namespace {
// mmap lets readers use the OS page cache directly instead of pread copies
// into SQLite's small default cache (measured: a quarter of search time).
constexpr const char* kMappedPragmas = "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-16384;";
// Unmapped, pages are copied into the connection's cache: keep it small, as
// it is heap that every such reader holds (the one writer keeps 16 MiB).
constexpr const char* kUnmappedPragmas = "PRAGMA mmap_size=0; PRAGMA cache_size=-2048;";
constexpr const char* kUnmappedWriterPragmas = "PRAGMA mmap_size=0; PRAGMA cache_size=-16384;";
}  // namespace

// ---- Stmt ----

Stmt::~Stmt() {
  if (!stmt_) return;
  if (in_use_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, std::string_view v) {
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}
Stmt& Stmt::BindBlob(int i, const void* data, size_t n) {
  sqlite3_bind_blob64(stmt_, i, data, n, SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Stmt& Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return conn_->LastError("step");
}

Status Stmt::Run() {
  for (;;) {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (!*r) return Status::Ok();
  }
}

bool Stmt::IsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
int64_t Stmt::Int(int col) const {
  return sqlite3_column_int64(stmt_, col);
}
double Stmt::Double(int col) const {
  return sqlite3_column_double(stmt_, col);
}
std::string Stmt::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}
std::optional<std::string> Stmt::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}
std::optional<int64_t> Stmt::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}
std::optional<double> Stmt::OptDouble(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Double(col);
}
std::string_view Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (!p) return {};
  return {static_cast<const char*>(p), static_cast<size_t>(n)};
}

// ---- Connection ----

void ConfigureSqliteOnce() {
  static const bool configured = [] {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  }();
  (void)configured;
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, const Options& opts) {
  ConfigureSqliteOnce();
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI |
              (opts.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::Unavailable("cannot open database " + path + ": " + msg);
  }
  std::unique_ptr<Connection> conn(new Connection(db));
  sqlite3_busy_timeout(db, opts.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  std::string pragmas = "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; " +
                        std::string(opts.mapped      ? kMappedPragmas
                                    : opts.read_only ? kUnmappedPragmas
                                                     : kUnmappedWriterPragmas);
  conn->mapped_ = opts.mapped;
  if (!opts.read_only) {
    pragmas += "PRAGMA journal_mode=WAL;";
    pragmas += opts.synchronous_full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
  }
  // journal_mode=WAL needs the write lock briefly; retry while another
  // process holds it beyond the busy timeout.
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = conn->Exec(pragmas);
    if (st.code() != StatusCode::kUnavailable) break;
  }
  if (!st.ok()) return st;
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
  sqlite3_close_v2(db_);
}

Result<Stmt> Connection::Prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Stmt(it->second.stmt, this, &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return LastError("prepare");
  if (it != cache_.end()) return Stmt(stmt, this, nullptr);
  auto added = cache_.emplace(std::string(sql), CachedStmt{stmt, true}).first;
  return Stmt(stmt, this, &added->second.in_use);
}

Status Connection::SetMapped(bool mapped) {
  if (mapped == mapped_) return Status::Ok();
  // Setting mmap_size unmaps the current mapping at once; a new mapping
  // starts empty and grows only with the pages read later.
  DS_RETURN_IF_ERROR(Exec(mapped ? kMappedPragmas : kUnmappedPragmas));
  mapped_ = mapped;
  return Status::Ok();
}

Status Connection::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return Status::Unavailable("database busy: " + msg);
    }
    if (primary == SQLITE_CONSTRAINT) return Status::Conflict(msg);
    return Status::Internal("sqlite: " + msg);
  }
  return Status::Ok();
}

int64_t Connection::LastInsertRowid() const {
  return sqlite3_last_insert_rowid(db_);
}
int Connection::Changes() const {
  return sqlite3_changes(db_);
}

Status Connection::LastError(std::string_view context) const {
  int rc = sqlite3_extended_errcode(db_);
  std::string msg = std::string(context) + ": " + sqlite3_errmsg(db_);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable("database busy (" + msg + ")");
    case SQLITE_CONSTRAINT:
      return Status::Conflict(msg);
    case SQLITE_TOOBIG:
      return Status::TooLarge(msg);
    case SQLITE_FULL:
      return Status::Unavailable("disk full (" + msg + ")");
    default:
      return Status::Internal("sqlite " + msg);
  }
}

// ---- Database ----

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const Options& opts) {
  std::unique_ptr<Database> db(new Database());
  db->path_ = path;
  db->opts_ = opts;
  if (db->opts_.reader_pool_size < 1) db->opts_.reader_pool_size = 1;
  std::filesystem::path p(path);
  if (p.has_parent_path() && path.rfind("file:", 0) != 0) {
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) {
      return Status::Unavailable("cannot create directory " + p.parent_path().string() + ": " +
                                 ec.message());
    }
  }
  Connection::Options copts;
  copts.busy_timeout_ms = opts.busy_timeout_ms;
  copts.synchronous_full = opts.synchronous_full;
  // The writer reads every row it updates, and some writes land on scattered
  // rows (a search's access counts): mapped, each such page would stay
  // resident; unmapped, its footprint is its cache.
  copts.mapped = false;
  auto writer = Connection::Open(path, copts);
  if (!writer.ok()) return writer.status();
  db->writer_ = std::move(writer).value();
  return db;
}

namespace {
// Transaction control as cached prepared statements: sqlite3_exec parsed
// BEGIN and COMMIT again on every request (~12% of a simple GET's CPU).
Status RunCached(Connection& conn, std::string_view sql) {
  DS_ASSIGN_OR_RETURN(Stmt s, conn.Prepare(sql));
  return s.Run();
}

// Runs `begin`, retrying with backoff while other processes hold the lock past
// the busy timeout, so transient contention never surfaces as an error.
Status BeginWithRetry(Connection& conn, std::string_view begin) {
  Status st;
  for (int attempt = 0; attempt < 8; ++attempt) {
    st = RunCached(conn, begin);
    if (st.code() != StatusCode::kUnavailable) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 << attempt));
  }
  return st;
}

// Keeps the read anchor closed for the lifetime of a write.
class AnchorWriteScope {
 public:
  explicit AnchorWriteScope(ReadLockAnchor* anchor) : anchor_(anchor) {
    if (anchor_) anchor_->BeginWrite();
  }
  ~AnchorWriteScope() {
    if (anchor_) anchor_->EndWrite();
  }
  AnchorWriteScope(const AnchorWriteScope&) = delete;
  AnchorWriteScope& operator=(const AnchorWriteScope&) = delete;

 private:
  ReadLockAnchor* anchor_;
};
}  // namespace

Status Database::Write(const std::function<Status(Connection&)>& fn) {
  std::lock_guard<std::mutex> lock(writer_mu_);
  AnchorWriteScope anchor_closed(anchor_.get());
  DS_RETURN_IF_ERROR(BeginWithRetry(*writer_, "BEGIN IMMEDIATE"));
  Status st = fn(*writer_);
  if (st.ok()) {
    st = RunCached(*writer_, "COMMIT");
    if (st.ok()) return st;
  }
  RunCached(*writer_, "ROLLBACK").ok();
  return st;
}

Status Database::WithWriter(const std::function<Status(Connection&)>& fn) {
  std::lock_guard<std::mutex> lock(writer_mu_);
  AnchorWriteScope anchor_closed(anchor_.get());
  return fn(*writer_);
}

Status Database::AnchorReads(ReadLockAnchor::Options opts) {
  if (anchor_) return Status::Ok();
  DS_ASSIGN_OR_RETURN(anchor_, ReadLockAnchor::Open(path_, opts));
  return Status::Ok();
}

Status Database::Read(const std::function<Status(Connection&)>& fn) {
  return ReadWith(ReadMode::kMapped, fn);
}

Status Database::ReadUnmapped(const std::function<Status(Connection&)>& fn) {
  return ReadWith(ReadMode::kUnmapped, fn);
}

Status Database::ReadScan(const std::function<Status(Connection&)>& fn) {
  return ReadWith(ReadMode::kScan, fn);
}

Status Database::ReadWith(ReadMode mode, const std::function<Status(Connection&)>& fn) {
  const bool unmapped = mode == ReadMode::kUnmapped;
  std::unique_ptr<Connection> conn;
  {
    std::unique_lock<std::mutex> lock(pool_mu_);
    pool_cv_.wait(lock,
                  [&] { return !idle_readers_.empty() || readers_open_ < opts_.reader_pool_size; });
    if (!idle_readers_.empty()) {
      // The newest idle reader in the wanted mode, else the newest of any.
      auto it = std::find_if(idle_readers_.rbegin(), idle_readers_.rend(),
                             [&](const auto& c) { return c->mapped() != unmapped; });
      auto pick = it == idle_readers_.rend() ? idle_readers_.end() - 1 : std::next(it).base();
      conn = std::move(*pick);
      idle_readers_.erase(pick);
    } else {
      ++readers_open_;
    }
  }
  if (!conn) {
    Connection::Options copts;
    copts.busy_timeout_ms = opts_.busy_timeout_ms;
    copts.read_only = true;
    auto opened = Connection::Open(path_, copts);
    if (!opened.ok()) {
      std::lock_guard<std::mutex> lock(pool_mu_);
      --readers_open_;
      pool_cv_.notify_one();
      return opened.status();
    }
    conn = std::move(opened).value();
  }
  if (anchor_) anchor_->Hold();
  Status st = conn->SetMapped(!unmapped);
  if (st.ok()) st = BeginWithRetry(*conn, "BEGIN");
  if (st.ok()) {
    st = fn(*conn);
    RunCached(*conn, "COMMIT").ok();
  }
  if (mode == ReadMode::kScan) conn->SetMapped(false).ok();
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    idle_readers_.push_back(std::move(conn));
  }
  pool_cv_.notify_one();
  return st;
}

std::string DefaultDatabasePath() {
  if (const char* p = std::getenv("DEVSTREAM_DATABASE_PATH"); p && *p) return p;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) {
    return std::string(x) + "/devstream/devstream.db";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/devstream/devstream.db";
}

}  // namespace ds
