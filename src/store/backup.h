// Online backup of a live database: a consistent snapshot copied with
// SQLite's backup API in one step from a read-only connection (a single read
// transaction, so writers in this and other processes are not blocked under
// WAL), written to "<dest>.partial", checked with PRAGMA quick_check and then
// renamed into place, so `dest` is either absent or a complete, valid copy.
// The full backup feature (schedule, retention, restore) builds on this.
// Thread-safety: independent calls may run concurrently.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace ds {

struct BackupInfo {
  std::string path;
  int64_t bytes = 0;
  int64_t pages = 0;
};

Result<BackupInfo> OnlineBackup(const std::string& source_db, const std::string& dest);

}  // namespace ds
