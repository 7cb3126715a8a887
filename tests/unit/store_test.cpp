#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "store/database.h"
#include "store/migrations.h"
#include "test_util.h"

namespace ds {
namespace {

using testing::NewMigratedDb;
using testing::TempDir;

std::vector<Migration> TwoMigrations() {
  return {
      ParseMigration(
          1, "one", "-- +migrate up\nCREATE TABLE a(x INTEGER);\n-- +migrate down\nDROP TABLE a;\n")
          .value(),
      ParseMigration(2, "two",
                     "-- +migrate up\nCREATE TABLE b(y TEXT);\n-- +migrate down\nDROP TABLE b;\n")
          .value(),
  };
}

bool TableExists(Database& db, const std::string& name) {
  bool exists = false;
  EXPECT_TRUE(db.Read([&](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM sqlite_master "
                                                        "WHERE type='table' AND name=?"));
                  s.Bind(1, name);
                  DS_ASSIGN_OR_RETURN(bool row, s.Step());
                  exists = row && s.Int(0) == 1;
                  return Status::Ok();
                }).ok());
  return exists;
}

TEST(MigrationsTest, EmbeddedUpCreatesWholeSchemaAndDownRemovesIt) {
  auto db = Database::Open(TempDir() + "/m.db", {});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Migrator m(**db);
  auto n = m.Up();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, static_cast<int>(EmbeddedMigrations().size()));
  for (const char* t :
       {"projects", "intervention_plans", "phases", "micro_tasks", "task_dependencies",
        "task_events", "semantic_memory", "memory_vectors", "memory_changes", "jobs", "workers",
        "api_keys", "work_sessions", "context_injections", "phase_dependencies"}) {
    EXPECT_TRUE(TableExists(**db, t)) << t;
  }
  EXPECT_EQ(*m.Pending(), 0);
  EXPECT_EQ(*m.Up(), 0) << "second Up is a no-op";
  auto down = m.Down(100);
  ASSERT_TRUE(down.ok()) << down.status().ToString();
  EXPECT_FALSE(TableExists(**db, "micro_tasks"));
  EXPECT_EQ(*m.Pending(), static_cast<int>(EmbeddedMigrations().size()));
}

TEST(MigrationsTest, UpToTargetAndDownSteps) {
  auto db = Database::Open(TempDir() + "/m.db", {});
  ASSERT_TRUE(db.ok());
  Migrator m(**db, TwoMigrations());
  EXPECT_EQ(*m.Up(1), 1);
  EXPECT_TRUE(TableExists(**db, "a"));
  EXPECT_FALSE(TableExists(**db, "b"));
  EXPECT_EQ(*m.Up(), 1);
  EXPECT_TRUE(TableExists(**db, "b"));
  EXPECT_EQ(*m.Down(1), 1);
  EXPECT_FALSE(TableExists(**db, "b"));
  EXPECT_TRUE(TableExists(**db, "a"));
  auto states = m.States();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 2u);
  EXPECT_TRUE((*states)[0].applied);
  EXPECT_FALSE((*states)[1].applied);
}

TEST(MigrationsTest, ChangedAppliedMigrationIsRefused) {
  auto db = Database::Open(TempDir() + "/m.db", {});
  ASSERT_TRUE(db.ok());
  {
    Migrator m(**db, TwoMigrations());
    ASSERT_TRUE(m.Up().ok());
  }
  auto edited = TwoMigrations();
  edited[0] = ParseMigration(1, "one",
                             "-- +migrate up\nCREATE TABLE a(x INTEGER, z INTEGER);\n"
                             "-- +migrate down\nDROP TABLE a;\n")
                  .value();
  Migrator m(**db, edited);
  Status st = m.Verify();
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st.message();
  EXPECT_FALSE(m.Up().ok());
}

TEST(MigrationsTest, DatabaseNewerThanBinaryIsRefused) {
  auto db = Database::Open(TempDir() + "/m.db", {});
  ASSERT_TRUE(db.ok());
  {
    Migrator m(**db, TwoMigrations());
    ASSERT_TRUE(m.Up().ok());
  }
  auto older = TwoMigrations();
  older.pop_back();
  Migrator m(**db, older);
  Status st = m.Verify();
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_NE(st.message().find("newer"), std::string::npos) << st.message();
}

TEST(MigrationsTest, MalformedFileIsAnError) {
  EXPECT_FALSE(ParseMigration(3, "bad", "CREATE TABLE x(y);").ok());
}

TEST(DatabaseTest, WriteRollsBackOnError) {
  auto db = NewMigratedDb();
  ASSERT_TRUE(db);
  Status st = db->Write([](Connection& c) -> Status {
    DS_RETURN_IF_ERROR(c.Exec("INSERT INTO projects(id, name, created_at) VALUES('p1','x','t')"));
    return Status::Conflict("abort");
  });
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  int64_t count = -1;
  ASSERT_TRUE(db->Read([&](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM projects"));
                  DS_RETURN_IF_ERROR(s.Step().status());
                  count = s.Int(0);
                  return Status::Ok();
                }).ok());
  EXPECT_EQ(count, 0);
}

// A cached statement is handed out again once its Stmt is gone, and while it
// is live a nested Prepare of the same SQL gets a statement of its own.
TEST(DatabaseTest, CachedStatementsAreReusedAndNeverSharedWhileLive) {
  auto db = NewMigratedDb();
  ASSERT_TRUE(db);
  constexpr const char* kSql = "SELECT value FROM json_each('[1,2,3]')";
  ASSERT_TRUE(db->Read([&](Connection& c) -> Status {
                  for (int round = 0; round < 3; ++round) {
                    DS_ASSIGN_OR_RETURN(Stmt outer, c.Prepare(kSql));
                    DS_ASSIGN_OR_RETURN(bool row, outer.Step());
                    EXPECT_TRUE(row);
                    EXPECT_EQ(outer.Int(0), 1);
                    {
                      DS_ASSIGN_OR_RETURN(Stmt inner, c.Prepare(kSql));
                      int64_t sum = 0;
                      for (;;) {
                        DS_ASSIGN_OR_RETURN(bool more, inner.Step());
                        if (!more) break;
                        sum += inner.Int(0);
                      }
                      EXPECT_EQ(sum, 6);
                    }
                    // The outer cursor was not disturbed by the inner one.
                    DS_ASSIGN_OR_RETURN(row, outer.Step());
                    EXPECT_TRUE(row);
                    EXPECT_EQ(outer.Int(0), 2);
                  }
                  return Status::Ok();
                }).ok());
}

// Whether this process has `path` memory-mapped (SQLite's mmap of the file).
bool FileIsMapped(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() >= path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0)
      return true;
  }
  return false;
}

TEST(DatabaseTest, ScanReadsThroughAMappingItDropsAtTheEnd) {
  std::string path;
  auto db = NewMigratedDb(&path);
  ASSERT_TRUE(db);
  // Pages still in the WAL are read from it, never through the mapping.
  ASSERT_TRUE(
      db->WithWriter([](Connection& c) { return c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); }).ok());
  ASSERT_FALSE(FileIsMapped(path));
  ASSERT_TRUE(db->ReadScan([&](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM sqlite_master"));
                  DS_ASSIGN_OR_RETURN(bool row, s.Step());
                  EXPECT_TRUE(row);
                  EXPECT_GT(s.Int(0), 0);
                  EXPECT_TRUE(c.mapped());
                  EXPECT_TRUE(FileIsMapped(path));
                  return Status::Ok();
                }).ok());
  EXPECT_FALSE(FileIsMapped(path));
  // The same reader serves later reads, mapped or not.
  ASSERT_TRUE(db->ReadUnmapped([&](Connection& c) -> Status {
                  EXPECT_FALSE(c.mapped());
                  return Status::Ok();
                }).ok());
  ASSERT_TRUE(db->Read([&](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM sqlite_master"));
                  DS_RETURN_IF_ERROR(s.Step().status());
                  EXPECT_TRUE(c.mapped());
                  return Status::Ok();
                }).ok());
  EXPECT_TRUE(FileIsMapped(path));
}

TEST(DatabaseTest, PragmasAreApplied) {
  auto db = NewMigratedDb();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->Write([](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt j, c.Prepare("PRAGMA journal_mode"));
                  DS_RETURN_IF_ERROR(j.Step().status());
                  EXPECT_EQ(j.Text(0), "wal");
                  DS_ASSIGN_OR_RETURN(Stmt f, c.Prepare("PRAGMA foreign_keys"));
                  DS_RETURN_IF_ERROR(f.Step().status());
                  EXPECT_EQ(f.Int(0), 1);
                  return Status::Ok();
                }).ok());
}

TEST(DatabaseTest, ConstraintViolationIsConflict) {
  auto db = NewMigratedDb();
  ASSERT_TRUE(db);
  Status st = db->Write([](Connection& c) {
    return c.Exec(
        "INSERT INTO phases(id, plan_id, name, created_at, updated_at) "
        "VALUES('x','no-such-plan','n','t','t')");
  });
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
}

TEST(DatabaseTest, ConcurrentWritersFromTwoHandlesNeverSeeLocked) {
  std::string path;
  auto db1 = NewMigratedDb(&path);
  ASSERT_TRUE(db1);
  auto db2 = Database::Open(path, {});
  ASSERT_TRUE(db2.ok());
  std::atomic<int> failures{0};
  auto work = [&](Database& db, int base) {
    for (int i = 0; i < 100; ++i) {
      Status st = db.Write([&](Connection& c) -> Status {
        DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO projects(id, name, created_at) "
                                              "VALUES(?, ?, 't')"));
        std::string id = "p" + std::to_string(base + i);
        s.Bind(1, id).Bind(2, id);
        return s.Run();
      });
      if (!st.ok()) ++failures;
    }
  };
  std::thread a(work, std::ref(*db1), 0);
  std::thread b(work, std::ref(**db2), 1000);
  std::thread r([&] {
    for (int i = 0; i < 200; ++i) {
      if (!db1->Read([](Connection& c) { return c.Exec("SELECT count(*) FROM projects"); }).ok()) {
        ++failures;
      }
    }
  });
  a.join();
  b.join();
  r.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(DatabaseTest, DefaultPathFollowsEnvironment) {
  setenv("DEVSTREAM_DATABASE_PATH", "/tmp/explicit.db", 1);
  EXPECT_EQ(DefaultDatabasePath(), "/tmp/explicit.db");
  unsetenv("DEVSTREAM_DATABASE_PATH");
  setenv("XDG_DATA_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(DefaultDatabasePath(), "/tmp/xdg/devstream/devstream.db");
  unsetenv("XDG_DATA_HOME");
}

}  // namespace
}  // namespace ds
