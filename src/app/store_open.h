// Opening the database for a command: the path from --db or the default
// (DEVSTREAM_DATABASE_PATH, then XDG), refusing a database migrated by a newer
// binary or with edited migrations, and applying pending migrations.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "store/database.h"

namespace ds::app {

Result<std::unique_ptr<Database>> OpenMigratedDatabase(const std::string& path, int reader_pool = 4,
                                                       int busy_timeout_ms = 5000);
// Unapplied migrations of the database at `path` (default path when empty),
// without creating it: a file that does not exist yet has them all pending.
Result<int> PendingMigrations(const std::string& path);
// Opens without migrating (for `devstream migrate`).
Result<std::unique_ptr<Database>> OpenDatabase(const std::string& path, int reader_pool = 4,
                                               int busy_timeout_ms = 5000);

}  // namespace ds::app
