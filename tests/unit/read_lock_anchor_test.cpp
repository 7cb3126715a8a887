// ReadLockAnchor through Database::AnchorReads: the process keeps its WAL
// read lock between reads, and the anchor never holds back a checkpoint for
// longer than its bounds (idle, max age, this process's writes).
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "store/database.h"
#include "test_util.h"

namespace ds {
namespace {

using namespace std::chrono_literals;

struct Checkpoint {
  int log = -1;           // frames in the WAL
  int checkpointed = -1;  // of those, copied into the database
};

// Another connection, as another process's would be.
class OtherConnection {
 public:
  explicit OtherConnection(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 2000);
  }
  ~OtherConnection() { sqlite3_close(db_); }
  void Exec(const char* sql) {
    ASSERT_EQ(sqlite3_exec(db_, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
  }
  Checkpoint PassiveCheckpoint() {
    Checkpoint c;
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done) ==
        SQLITE_OK) {
      c.log = log;
      c.checkpointed = done;
    }
    return c;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<Database> OpenWithTable(const std::string& path) {
  auto db = Database::Open(path, {});
  EXPECT_TRUE(db.ok());
  EXPECT_TRUE((*db)->Write([](Connection& c) { return c.Exec("CREATE TABLE t(x INTEGER)"); }).ok());
  return std::move(db).value();
}

int64_t CountRows(Database& db) {
  int64_t n = -1;
  EXPECT_TRUE(db.Read([&](Connection& c) -> Status {
                  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM t"));
                  DS_ASSIGN_OR_RETURN(bool row, s.Step());
                  if (row) n = s.Int(0);
                  return Status::Ok();
                }).ok());
  return n;
}

// Polls until every WAL frame has been checkpointed, for at most `limit`.
bool CheckpointCompletes(OtherConnection& other, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    Checkpoint c = other.PassiveCheckpoint();
    if (c.log >= 0 && c.checkpointed == c.log) return true;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// POSIX read locks this process holds on the WAL read-slot bytes of the -shm
// file (offsets 123-127), from /proc/locks.
int ReadSlotLocksHeld(const std::string& db_path) {
  struct stat st {};
  if (stat((db_path + "-shm").c_str(), &st) != 0) return -1;
  std::ifstream locks("/proc/locks");
  std::string line;
  int held = 0;
  const std::string pid = std::to_string(getpid());
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string n, kind, mode, rw, owner, dev_inode, start, end;
    in >> n >> kind >> mode >> rw >> owner >> dev_inode >> start >> end;
    if (kind != "POSIX" || rw != "READ" || owner != pid) continue;
    auto colon = dev_inode.rfind(':');
    if (colon == std::string::npos ||
        std::stoull(dev_inode.substr(colon + 1)) != static_cast<unsigned long long>(st.st_ino)) {
      continue;
    }
    long first = std::stol(start);
    if (first >= 123 && first <= 127) ++held;
  }
  return held;
}

TEST(ReadLockAnchorTest, KeepsTheProcessReadLockBetweenReads) {
  const std::string path = testing::TempDir() + "/a.db";
  auto db = OpenWithTable(path);
  ASSERT_EQ(CountRows(*db), 0);
  EXPECT_EQ(ReadSlotLocksHeld(path), 0) << "without the anchor, no read lock outlives a read";

  ASSERT_TRUE(db->AnchorReads({.idle = 10s, .max_age = 10s}).ok());
  ASSERT_EQ(CountRows(*db), 0);
  EXPECT_EQ(ReadSlotLocksHeld(path), 1) << "the anchor keeps one read slot locked";
}

// A database whose reads are anchored, with the anchor held (one read ran),
// and another connection to the same file.
struct Anchored {
  explicit Anchored(ReadLockAnchor::Options opts)
      : path(testing::TempDir() + "/a.db"), db(OpenWithTable(path)) {
    EXPECT_TRUE(db->AnchorReads(opts).ok());
    EXPECT_EQ(CountRows(*db), 0);
    other = std::make_unique<OtherConnection>(path);
  }
  // Inserts a row through the other connection. True when a checkpoint right
  // after cannot copy it into the database: the anchor's snapshot predates it.
  bool InsertHeldBackByTheAnchor() {
    other->Exec("INSERT INTO t VALUES (1)");
    Checkpoint c = other->PassiveCheckpoint();
    return c.checkpointed < c.log;
  }

  std::string path;
  std::unique_ptr<Database> db;
  std::unique_ptr<OtherConnection> other;
};

TEST(ReadLockAnchorTest, ReadsStillSeeOtherConnectionsWritesAtOnce) {
  Anchored a({.idle = 10s, .max_age = 10s});
  a.other->Exec("INSERT INTO t VALUES (1), (2)");
  EXPECT_EQ(CountRows(*a.db), 2);
}

TEST(ReadLockAnchorTest, AnIdleAnchorIsDroppedSoCheckpointsComplete) {
  Anchored a({.idle = 100ms, .max_age = 10s});
  EXPECT_TRUE(a.InsertHeldBackByTheAnchor());
  // No reads from here: the anchor goes within two idle periods.
  EXPECT_TRUE(CheckpointCompletes(*a.other, 5s));
  EXPECT_EQ(ReadSlotLocksHeld(a.path), 0);
}

TEST(ReadLockAnchorTest, WritesOfThisProcessRunWithoutIt) {
  Anchored a({.idle = 10s, .max_age = 10s});
  ASSERT_TRUE(a.InsertHeldBackByTheAnchor());
  ASSERT_TRUE(a.db->Write([](Connection& c) { return c.Exec("INSERT INTO t VALUES (2)"); }).ok());
  // Neither the timer (10 s) nor a read has run since: only the write closed it.
  Checkpoint after = a.other->PassiveCheckpoint();
  EXPECT_EQ(after.checkpointed, after.log);
  EXPECT_EQ(ReadSlotLocksHeld(a.path), 0);
  EXPECT_EQ(CountRows(*a.db), 2);
}

TEST(ReadLockAnchorTest, AnOldAnchorIsRenewedUnderSteadyReads) {
  Anchored a({.idle = 10s, .max_age = 500ms});
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      CountRows(*a.db);
      std::this_thread::sleep_for(2ms);
    }
  });
  EXPECT_TRUE(a.InsertHeldBackByTheAnchor());
  // Reads never stop, so only the age limit lets the checkpoint get past the
  // anchor (a renewed anchor's snapshot includes the insert).
  EXPECT_TRUE(CheckpointCompletes(*a.other, 5s));
  stop = true;
  reader.join();
}

TEST(ReadLockAnchorTest, AnotherWriterStillStartsTheWalOverUnderSteadyReads) {
  Anchored a({.idle = 10s, .max_age = 200ms, .gap = 50ms});
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) CountRows(*a.db);
  });
  // The other connection writes and checkpoints in a loop. SQLite starts the
  // WAL over (its frame count drops) only at a write that begins with every
  // frame checkpointed and no reader on a snapshot that needs them: never
  // while an anchor is held, so only in the anchor's gaps.
  bool restarted = false;
  int last_log = 0;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!restarted && std::chrono::steady_clock::now() < deadline) {
    a.other->Exec("INSERT INTO t VALUES (1)");
    Checkpoint c = a.other->PassiveCheckpoint();
    restarted = c.log >= 0 && c.log < last_log;
    last_log = c.log;
  }
  stop = true;
  reader.join();
  EXPECT_TRUE(restarted);
}

}  // namespace
}  // namespace ds
