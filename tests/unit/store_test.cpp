#include <gtest/gtest.h>
#include <filesystem>
#include "store/database.h"
#include "store/migrations.h"
#include "core/id.h"

namespace ds {
namespace {

std::string TempDbPath() {
  auto dir = std::filesystem::temp_directory_path() / ("ds_test_" + RandomHex(8));
  std::filesystem::create_directories(dir);
  return (dir / "test.db").string();
}

TEST(MigrationsTest, UpCreatesSchema) {
  auto db = Database::Open(TempDbPath(), {});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Migrator m(**db);
  auto n = m.Up();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, m.LatestVersion());
}

}  // namespace
}  // namespace ds
