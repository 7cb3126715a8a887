// Schema migrations: numbered SQL files (src/store/migrations/NNNN_name.sql,
// each with "-- +migrate up" and "-- +migrate down" parts) embedded in the
// binary at build time. schema_migrations records each applied version with
// the BLAKE2b checksum of its file, so an edited applied migration, or a
// database migrated by a newer binary, is detected and refused.
// Each migration runs in its own BEGIN IMMEDIATE transaction, re-checking what
// is applied inside it, so concurrent migrators (several processes) are safe.
// Thread-safe through Database.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "store/database.h"

namespace ds {

struct Migration {
  int version;
  std::string name;
  std::string up;
  std::string down;
  std::string checksum;  // hex BLAKE2b-256 of up + down
};

struct MigrationState {
  int version;
  std::string name;
  bool applied;
  std::string applied_at;  // empty when pending
  bool checksum_ok;        // false when the applied file differs from the binary's
  bool known;              // false when the database has a version the binary lacks
};

// Splits a migration file into its parts; InvalidArgument on a missing marker.
Result<Migration> ParseMigration(int version, std::string name, const std::string& text);

class Migrator {
 public:
  // Uses the migrations embedded in the binary.
  explicit Migrator(Database& db);
  Migrator(Database& db, std::vector<Migration> migrations);

  int LatestVersion() const;
  Result<std::vector<MigrationState>> States() const;
  // Conflict when an applied migration's checksum differs or the database has
  // versions this binary does not know.
  Status Verify() const;
  // Applies pending migrations up to `target` (default: latest).
  Result<int> Up(int target = -1);
  // Reverts the newest `steps` applied migrations.
  Result<int> Down(int steps = 1);
  // Number of migrations not yet applied.
  Result<int> Pending() const;

 private:
  Status EnsureTable();

  Database& db_;
  std::vector<Migration> migrations_;
};

// The migrations compiled into this binary, ordered by version.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace ds
