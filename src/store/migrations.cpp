#include "store/migrations.h"

#include <algorithm>
#include <map>

#include "core/clock.h"
#include "core/id.h"

namespace ds {

Result<Migration> ParseMigration(int version, std::string name, const std::string& text) {
  static const std::string kUp = "-- +migrate up";
  static const std::string kDown = "-- +migrate down";
  size_t up = text.find(kUp);
  size_t down = text.find(kDown);
  if (up == std::string::npos || down == std::string::npos || down < up) {
    return Status::InvalidArgument("migration " + std::to_string(version) + " (" + name +
                                   ") needs '-- +migrate up' followed by '-- +migrate down'");
  }
  Migration m;
  m.version = version;
  m.name = std::move(name);
  m.up = text.substr(up + kUp.size(), down - up - kUp.size());
  m.down = text.substr(down + kDown.size());
  m.checksum = Blake2bHex(m.up + "\n-- down --\n" + m.down);
  return m;
}

Migrator::Migrator(Database& db) : Migrator(db, EmbeddedMigrations()) {}

Migrator::Migrator(Database& db, std::vector<Migration> migrations)
    : db_(db), migrations_(std::move(migrations)) {
  std::sort(migrations_.begin(), migrations_.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
}

int Migrator::LatestVersion() const {
  return migrations_.empty() ? 0 : migrations_.back().version;
}

Status Migrator::EnsureTable() {
  return db_.WithWriter([](Connection& c) {
    return c.Exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)");
  });
}

namespace {
struct Applied {
  std::string name, checksum, applied_at;
};

Result<std::map<int, Applied>> LoadApplied(Connection& c) {
  std::map<int, Applied> out;
  auto exists = c.Prepare(
      "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'");
  if (!exists.ok()) return exists.status();
  auto r = exists->Step();
  if (!r.ok()) return r.status();
  if (exists->Int(0) == 0) return out;
  auto st = c.Prepare("SELECT version, name, checksum, applied_at FROM schema_migrations");
  if (!st.ok()) return st.status();
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out[static_cast<int>(st->Int(0))] = {st->Text(1), st->Text(2), st->Text(3)};
  }
  return out;
}
}  // namespace

Result<std::vector<MigrationState>> Migrator::States() const {
  std::vector<MigrationState> out;
  Status st = db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(auto applied, LoadApplied(c));
    for (const auto& m : migrations_) {
      auto it = applied.find(m.version);
      MigrationState s{m.version, m.name, it != applied.end(), "", true, true};
      if (s.applied) {
        s.applied_at = it->second.applied_at;
        s.checksum_ok = it->second.checksum == m.checksum;
        applied.erase(it);
      }
      out.push_back(s);
    }
    for (const auto& [v, a] : applied) {
      out.push_back({v, a.name, true, a.applied_at, true, false});
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  std::sort(out.begin(), out.end(),
            [](const MigrationState& a, const MigrationState& b) { return a.version < b.version; });
  return out;
}

Status Migrator::Verify() const {
  DS_ASSIGN_OR_RETURN(auto states, States());
  for (const auto& s : states) {
    if (!s.known) {
      return Status::Conflict("database has migration " + std::to_string(s.version) + " (" +
                              s.name + ") which this binary does not know (latest " +
                              std::to_string(LatestVersion()) +
                              "): the database was migrated by a newer devstream");
    }
    if (!s.checksum_ok) {
      return Status::Conflict("applied migration " + std::to_string(s.version) + " (" + s.name +
                              ") differs from the one in this binary (checksum mismatch)");
    }
  }
  return Status::Ok();
}

Result<int> Migrator::Pending() const {
  DS_ASSIGN_OR_RETURN(auto states, States());
  int n = 0;
  for (const auto& s : states) n += !s.applied;
  return n;
}

Result<int> Migrator::Up(int target) {
  if (target < 0) target = LatestVersion();
  DS_RETURN_IF_ERROR(EnsureTable());
  DS_RETURN_IF_ERROR(Verify());
  int applied_count = 0;
  for (const auto& m : migrations_) {
    if (m.version > target) break;
    Status st = db_.Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(auto applied, LoadApplied(c));
      if (applied.count(m.version)) return Status::Ok();  // another process got here first
      DS_RETURN_IF_ERROR(c.Exec(m.up));
      DS_ASSIGN_OR_RETURN(auto ins, c.Prepare("INSERT INTO schema_migrations(version, name, "
                                              "checksum, applied_at) VALUES(?,?,?,?)"));
      ins.Bind(1, m.version).Bind(2, m.name).Bind(3, m.checksum).Bind(4, NowTimestamp());
      DS_RETURN_IF_ERROR(ins.Run());
      ++applied_count;
      return Status::Ok();
    });
    if (!st.ok()) {
      return Status::Internal("migration " + std::to_string(m.version) + " (" + m.name +
                              ") failed: " + st.message());
    }
  }
  return applied_count;
}

Result<int> Migrator::Down(int steps) {
  DS_RETURN_IF_ERROR(EnsureTable());
  DS_RETURN_IF_ERROR(Verify());
  int reverted = 0;
  for (int i = 0; i < steps; ++i) {
    bool done = false;
    Status st = db_.Write([&](Connection& c) -> Status {
      DS_ASSIGN_OR_RETURN(auto applied, LoadApplied(c));
      if (applied.empty()) {
        done = true;
        return Status::Ok();
      }
      int v = applied.rbegin()->first;
      auto it = std::find_if(migrations_.begin(), migrations_.end(),
                             [&](const Migration& m) { return m.version == v; });
      if (it == migrations_.end()) {
        return Status::Conflict("cannot revert unknown migration " + std::to_string(v));
      }
      DS_RETURN_IF_ERROR(c.Exec(it->down));
      DS_ASSIGN_OR_RETURN(auto del, c.Prepare("DELETE FROM schema_migrations WHERE version=?"));
      del.Bind(1, v);
      DS_RETURN_IF_ERROR(del.Run());
      ++reverted;
      return Status::Ok();
    });
    if (!st.ok()) return st;
    if (done) break;
  }
  return reverted;
}

}  // namespace ds
