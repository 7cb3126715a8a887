#include "store/backup.h"

#include <sqlite3.h>

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
  // The copy is a rollback-journal database on its own; make sure it reads
  // back before it replaces anything.
  sqlite3_stmt* check = nullptr;
  std::string verdict;
  if (sqlite3_prepare_v2(out.get(), "PRAGMA quick_check", -1, &check, nullptr) == SQLITE_OK &&
      sqlite3_step(check) == SQLITE_ROW) {
    verdict = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
  }
  sqlite3_finalize(check);
  out.reset();
  if (verdict != "ok") {
    fs::remove(partial, ec);
    return Status::Internal("backup: the copy failed quick_check: " + verdict);
  }
  fs::rename(partial, dest, ec);
  if (ec) return Status::Internal("backup: renaming into " + dest + ": " + ec.message());
  info.bytes = static_cast<int64_t>(fs::file_size(dest, ec));
  return info;
}

}  // namespace ds
