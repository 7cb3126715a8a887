// Helpers shared by unit tests: a fresh migrated database in a temp directory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "core/id.h"
#include "store/database.h"
#include "store/migrations.h"

namespace ds::testing {

inline std::string TempDir() {
  auto dir = std::filesystem::temp_directory_path() / ("ds_test_" + RandomHex(8));
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::unique_ptr<Database> NewMigratedDb(std::string* path_out = nullptr) {
  std::string path = TempDir() + "/test.db";
  if (path_out) *path_out = path;
  auto db = Database::Open(path, {});
  if (!db.ok()) return nullptr;
  Migrator m(**db);
  if (!m.Up().ok()) return nullptr;
  return std::move(db).value();
}

}  // namespace ds::testing
