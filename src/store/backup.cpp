#include "store/backup.h"

#include "store/database.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

namespace ds {
namespace {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

Status Fail(sqlite3* db, const std::string& what) {
  return Status::Internal(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

}  // namespace

Result<BackupInfo> OnlineBackup(const std::string& source_db, const std::string& dest) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dest_path(dest);
  if (dest_path.has_parent_path()) {
    fs::create_directories(dest_path.parent_path(), ec);
    if (ec) {
      return Status::Internal("backup: cannot create " + dest_path.parent_path().string() + ": " +
                              ec.message());
    }
  }
  std::string partial = dest + ".partial";
  fs::remove(partial, ec);

  ConfigureSqliteOnce();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(source_db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  DbHandle src(raw);
  if (rc != SQLITE_OK) return Fail(raw, "backup: opening " + source_db);
  sqlite3_busy_timeout(src.get(), 5000);
  raw = nullptr;
  rc = sqlite3_open_v2(partial.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  DbHandle out(raw);
  if (rc != SQLITE_OK) return Fail(raw, "backup: creating " + partial);

  BackupInfo info;
  info.path = dest;
  sqlite3_backup* b = sqlite3_backup_init(out.get(), "main", src.get(), "main");
  if (!b) return Fail(out.get(), "backup: starting");
  rc = sqlite3_backup_step(b, -1);
  info.pages = sqlite3_backup_pagecount(b);
  int finish = sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE || finish != SQLITE_OK) {
    Status st = Fail(out.get(), "backup: copying");
    out.reset();
    fs::remove(partial, ec);
    return st;
  }
  // The copy carries the live file's WAL flag; make it a rollback-journal
  // database on its own, so reading it (verify, restore) never leaves -wal
  // and -shm files beside it. Then make sure it reads back before it
  // replaces anything.
  sqlite3_exec(out.get(), "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr);
  sqlite3_stmt* check = nullptr;
  std::string verdict;
  if (sqlite3_prepare_v2(out.get(), "PRAGMA integrity_check", -1, &check, nullptr) == SQLITE_OK &&
      sqlite3_step(check) == SQLITE_ROW) {
    verdict = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
  }
  sqlite3_finalize(check);
  out.reset();
  if (verdict != "ok") {
    fs::remove(partial, ec);
    return Status::Internal("backup: the copy failed integrity_check: " + verdict);
  }
  fs::rename(partial, dest, ec);
  if (ec) return Status::Internal("backup: renaming into " + dest + ": " + ec.message());
  info.bytes = static_cast<int64_t>(fs::file_size(dest, ec));
  return info;
}

Result<BackupInfo> VerifyBackup(const std::string& path, int max_schema_version) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return Status::InvalidArgument(path + " is not a file");
  }
  ConfigureSqliteOnce();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) return Status::InvalidArgument(path + " cannot be opened as SQLite");
  auto one = [&](const char* sql, std::string* out) -> bool {
    sqlite3_stmt* st = nullptr;
    bool ok = sqlite3_prepare_v2(db.get(), sql, -1, &st, nullptr) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW;
    if (ok && sqlite3_column_text(st, 0)) {
      *out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return ok;
  };
  std::string verdict;
  if (!one("PRAGMA integrity_check", &verdict) || verdict != "ok") {
    return Status::InvalidArgument(
        path + " fails integrity_check: " + (verdict.empty() ? "not a database" : verdict));
  }
  std::string version;
  if (!one("SELECT max(version) FROM schema_migrations", &version) || version.empty()) {
    return Status::InvalidArgument(path + " is not a DevStream database (no schema_migrations)");
  }
  if (std::stoi(version) > max_schema_version) {
    return Status::InvalidArgument(path + " has schema version " + version +
                                   ", newer than this binary's " +
                                   std::to_string(max_schema_version));
  }
  BackupInfo info;
  info.path = path;
  info.bytes = static_cast<int64_t>(fs::file_size(path, ec));
  return info;
}

std::vector<BackupFile> ListBackups(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<BackupFile> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != ".db") continue;
    BackupFile f;
    f.path = e.path().string();
    f.bytes = static_cast<int64_t>(e.file_size(ec));
    struct stat st {};
    if (stat(f.path.c_str(), &st) == 0) {
      f.modified_unix_ms =
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const BackupFile& a, const BackupFile& b) {
    return a.modified_unix_ms != b.modified_unix_ms ? a.modified_unix_ms > b.modified_unix_ms
                                                    : a.path > b.path;
  });
  return out;
}

std::vector<std::string> PruneBackups(const std::string& dir, int keep, int keep_days) {
  namespace fs = std::filesystem;
  std::vector<std::string> deleted;
  int64_t cutoff = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count() -
                   int64_t{keep_days} * 86'400'000;
  int seen = 0;
  for (const auto& f : ListBackups(dir)) {
    std::string name = fs::path(f.path).filename().string();
    if (name.rfind("devstream-", 0) != 0) continue;  // not ours: never touched
    if (++seen <= keep) continue;
    if (f.modified_unix_ms >= cutoff) continue;
    std::error_code ec;
    if (fs::remove(f.path, ec)) deleted.push_back(f.path);
  }
  return deleted;
}

Status RestoreInto(const std::string& backup, const std::string& live_db, int max_schema_version) {
  DS_RETURN_IF_ERROR(VerifyBackup(backup, max_schema_version).status());
  ConfigureSqliteOnce();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(backup.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  DbHandle src(raw);
  if (rc != SQLITE_OK) return Fail(raw, "restore: opening " + backup);
  raw = nullptr;
  rc = sqlite3_open_v2(live_db.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  DbHandle dst(raw);
  if (rc != SQLITE_OK) return Fail(raw, "restore: opening " + live_db);
  sqlite3_busy_timeout(dst.get(), 10000);
  // The generation after the restore: past both files' generations.
  auto generation = [](sqlite3* db) {
    sqlite3_stmt* st = nullptr;
    int64_t g = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      g = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return g;
  };
  int64_t next = std::max(generation(src.get()), generation(dst.get())) + 1;
  sqlite3_backup* b = sqlite3_backup_init(dst.get(), "main", src.get(), "main");
  if (!b) return Fail(dst.get(), "restore: starting");
  // In steps, retrying while other connections hold locks.
  for (;;) {
    rc = sqlite3_backup_step(b, 256);
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_OK) continue;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      sqlite3_sleep(20);
      continue;
    }
    break;
  }
  int finish = sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE || finish != SQLITE_OK) return Fail(dst.get(), "restore: copying");
  std::string pragma = "PRAGMA user_version = " + std::to_string(next);
  if (sqlite3_exec(dst.get(), pragma.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Fail(dst.get(), "restore: marking the restore generation");
  }
  return Status::Ok();
}

}  // namespace ds
