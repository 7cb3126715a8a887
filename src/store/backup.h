// Online backup of a live database: a consistent snapshot copied with
// SQLite's backup API in one step from a read-only connection (a single read
// transaction, so writers in this and other processes are not blocked under
// WAL), written to "<dest>.partial", checked with PRAGMA integrity_check and then
// renamed into place, so `dest` is either absent or a complete, valid copy.
// The full backup feature (schedule, retention, restore) builds on this.
// Thread-safety: independent calls may run concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ds {

struct BackupInfo {
  std::string path;
  int64_t bytes = 0;
  int64_t pages = 0;
};

Result<BackupInfo> OnlineBackup(const std::string& source_db, const std::string& dest);

// A backup file passes PRAGMA integrity_check and holds a DevStream schema no
// newer than `max_schema_version`. InvalidArgument says what is wrong.
Result<BackupInfo> VerifyBackup(const std::string& path, int max_schema_version);

struct BackupFile {
  std::string path;
  int64_t bytes = 0;
  int64_t modified_unix_ms = 0;
};
// The *.db files of `dir`, newest first (none when it does not exist).
std::vector<BackupFile> ListBackups(const std::string& dir);
// Deletes devstream-*.db backups older than `keep_days` days, always keeping
// the newest `keep`. Returns the deleted paths.
std::vector<std::string> PruneBackups(const std::string& dir, int keep, int keep_days);

// Copies a verified backup *into* the live database with the backup API (the
// file stays in place, so processes that hold it open see the restored
// content) and bumps the restore generation (PRAGMA user_version), which
// makes running servers reload their indexes.
Status RestoreInto(const std::string& backup, const std::string& live_db, int max_schema_version);

}  // namespace ds
