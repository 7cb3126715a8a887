// SQLite access for one process: a Connection wraps one sqlite3 handle with the
// project's pragmas and a prepared-statement cache; a Database owns one writer
// connection (writes are serialised through it, each in BEGIN IMMEDIATE) and a
// pool of reader connections (each read runs in its own snapshot transaction).
// Several processes may share the file; busy_timeout plus bounded retries keep
// "database is locked" from reaching callers (they see Unavailable at worst).
//
// Thread-safety: Database is thread-safe. A Connection and its Statements are
// used by one thread at a time (the one holding it inside Read/Write).
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "store/read_lock_anchor.h"

namespace ds {

class Connection;

// A cached prepared statement, reset and unbound when this handle goes away.
// Bind indices are 1-based, column indices 0-based.
class Stmt {
 public:
  // `in_use`: the cache entry's flag when the statement belongs to the
  // connection's cache (reset and the flag cleared on release); null when it
  // belongs to this handle (finalized on release).
  Stmt(sqlite3_stmt* stmt, Connection* conn, bool* in_use)
      : stmt_(stmt), conn_(conn), in_use_(in_use) {}
  Stmt(Stmt&& other) noexcept : stmt_(other.stmt_), conn_(other.conn_), in_use_(other.in_use_) {
    other.stmt_ = nullptr;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v);
  Stmt& Bind(int i, std::string_view v);
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& BindBlob(int i, const void* data, size_t n);
  Stmt& BindNull(int i);
  template <typename T>
  Stmt& Bind(int i, const std::optional<T>& v) {
    return v ? Bind(i, *v) : BindNull(i);
  }

  // Back to the start with bindings cleared, to run again with new values.
  Stmt& Reset();
  // Steps once: true when a row is available, false when done.
  Result<bool> Step();
  // Steps to completion (for statements without rows).
  Status Run();

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;
  std::optional<std::string> OptText(int col) const;
  std::optional<int64_t> OptInt(int col) const;
  std::optional<double> OptDouble(int col) const;
  std::string_view Blob(int col) const;

 private:
  sqlite3_stmt* stmt_;
  Connection* conn_;
  bool* in_use_;
};

// Process-wide SQLite settings, applied once before SQLite's first use; every
// place in store/ that opens a database calls it first. Today: no global
// memory statistics (SQLITE_CONFIG_MEMSTATUS off), which nothing reads and
// which take one process-wide mutex around every SQLite allocation and free.
// Thread-safe; a no-op when SQLite was already initialised.
void ConfigureSqliteOnce();

class Connection {
 public:
  struct Options {
    int busy_timeout_ms = 5000;
    bool synchronous_full = false;
    bool read_only = false;
    bool mapped = true;  // see mapped()
  };
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, const Options& opts);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A cached prepared statement for `sql`; the SQL must be a single statement.
  Result<Stmt> Prepare(std::string_view sql);
  // Runs one or more statements without results.
  Status Exec(std::string_view sql);
  int64_t LastInsertRowid() const;
  int Changes() const;
  sqlite3* raw() { return db_; }
  // Whether reads go through a memory mapping of the file (the default; no
  // copies, but every page a connection touches stays in its own mapping and
  // counts as resident once per connection) or through pread into a small
  // page cache. Switching unmaps at once. See Database::ReadUnmapped.
  bool mapped() const { return mapped_; }
  Status SetMapped(bool mapped);

  // Maps the connection's last error to a Status.
  Status LastError(std::string_view context) const;

 private:
  friend class Stmt;
  explicit Connection(sqlite3* db) : db_(db) {}

  struct CachedStmt {
    sqlite3_stmt* stmt;
    bool in_use;
  };
  sqlite3* db_;
  bool mapped_ = true;
  // A statement in use (a live Stmt) is not handed out twice: a nested Prepare
  // of the same SQL gets a private, uncached statement instead. A live Stmt
  // points at its entry's `in_use` (map nodes do not move).
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, CachedStmt, SqlHash, std::equal_to<>> cache_;
};

class Database {
 public:
  struct Options {
    int reader_pool_size = 10;
    int busy_timeout_ms = 5000;
    bool synchronous_full = false;
  };
  // Opens (creating if needed) the database file and its parent directory.
  static Result<std::unique_ptr<Database>> Open(const std::string& path, const Options& opts);

  const std::string& path() const { return path_; }

  // Runs `fn` inside BEGIN IMMEDIATE on the writer; commits when fn returns OK,
  // rolls back otherwise. Retries BEGIN when another process holds the lock.
  Status Write(const std::function<Status(Connection&)>& fn);
  // Runs `fn` inside a read transaction on a pooled reader (a consistent snapshot).
  Status Read(const std::function<Status(Connection&)>& fn);
  // The same for a read that touches scattered rows (a search's hits):
  // without memory mapping, so the pages it reads stay in the OS page cache
  // and do not count as this process's resident memory once per connection.
  // Readers keep their mode between reads, and each read prefers an idle
  // reader already in the mode it wants.
  Status ReadUnmapped(const std::function<Status(Connection&)>& fn);
  // The same for a read that streams through much of the file once (loading
  // the indexes at start): mapped while it runs, which saves a pread call and
  // a copy per page, and unmapped when it ends, so the pages it touched do not
  // stay resident in this process either.
  Status ReadScan(const std::function<Status(Connection&)>& fn);

  // Writer access outside a transaction (migrations that manage their own, VACUUM...).
  Status WithWriter(const std::function<Status(Connection&)>& fn);

  // For a process that serves concurrent reads (the server): from now on a
  // ReadLockAnchor keeps this process's WAL read lock between reads, and
  // writes drop it first. Call before the Database is shared between threads.
  Status AnchorReads(ReadLockAnchor::Options opts = {});

 private:
  Database() = default;
  enum class ReadMode { kMapped, kUnmapped, kScan };
  Status ReadWith(ReadMode mode, const std::function<Status(Connection&)>& fn);

  std::string path_;
  Options opts_;
  std::mutex writer_mu_;
  std::unique_ptr<Connection> writer_;
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
  int readers_open_ = 0;
  std::unique_ptr<ReadLockAnchor> anchor_;  // set once, before concurrent use
};

// DEVSTREAM_DATABASE_PATH, else $XDG_DATA_HOME/devstream/devstream.db, else
// ~/.local/share/devstream/devstream.db.
std::string DefaultDatabasePath();

}  // namespace ds
