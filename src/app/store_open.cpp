#include "app/store_open.h"

#include <filesystem>

#include "store/migrations.h"

namespace ds::app {

Result<std::unique_ptr<Database>> OpenDatabase(const std::string& path, int reader_pool,
                                               int busy_timeout_ms) {
  Database::Options o;
  o.reader_pool_size = reader_pool;
  o.busy_timeout_ms = busy_timeout_ms;
  return Database::Open(path.empty() ? DefaultDatabasePath() : path, o);
}

Result<std::unique_ptr<Database>> OpenMigratedDatabase(const std::string& path, int reader_pool,
                                                       int busy_timeout_ms) {
  DS_ASSIGN_OR_RETURN(auto db, OpenDatabase(path, reader_pool, busy_timeout_ms));
  Migrator m(*db);
  auto applied = m.Up();
  if (!applied.ok()) return applied.status();
  return db;
}

Result<int> PendingMigrations(const std::string& path) {
  std::string p = path.empty() ? DefaultDatabasePath() : path;
  if (!std::filesystem::exists(p)) return static_cast<int>(EmbeddedMigrations().size());
  DS_ASSIGN_OR_RETURN(auto db, OpenDatabase(p, 1));
  return Migrator(*db).Pending();
}

}  // namespace ds::app
