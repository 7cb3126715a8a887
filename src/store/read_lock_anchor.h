// ReadLockAnchor keeps one read transaction open, on a connection of its own,
// while a process is serving reads, so that the process does not drop its last
// lock on the WAL's read slot between two reads.
//
// Why: SQLite takes and drops its POSIX lock on a WAL read slot with fcntl()
// whenever the number of this process's connections reading through the slot
// goes from 0 to 1 or back, and it makes that call while holding the mutex
// that every connection to the file in this process needs to begin or end a
// read. With several request threads, readers queue behind a system call: in
// a GET by id, a third of the futex calls and context switches were there.
// While the anchor's transaction is open the count does not reach 0.
//
// What it costs, and the bounds: the anchor is a reader like any other, so
// while it is held a checkpoint cannot copy frames newer than its snapshot
// into the database, and the WAL cannot start over. So it is never held during
// this process's writes (BeginWrite/EndWrite bracket them, and the commit's
// checkpoint runs without it), and it is dropped after `idle` without a read.
// Other processes' writers get their turn by time: at `max_age` the anchor is
// closed and stays closed for `gap`. Their checkpoint can then copy every
// frame, and their next write can start the WAL over, which SQLite does only
// at a moment when no reader holds a snapshot that needs the old frames; a
// busy server's own short reads leave such moments, an anchor would not. It
// never serves a read: every read still runs in its own, current snapshot.
//
// Thread-safety: thread-safe. A background thread drops the anchor when it is
// idle or old; it sleeps while nothing is held.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"

namespace ds {

class Connection;

class ReadLockAnchor {
 public:
  struct Options {
    std::chrono::milliseconds idle{200};      // dropped after this long without a read
    std::chrono::milliseconds max_age{1000};  // closed after this long...
    std::chrono::milliseconds gap{50};        // ...for at least this long
  };

  // Opens its own read-only connection to `path` (which must be in WAL mode).
  static Result<std::unique_ptr<ReadLockAnchor>> Open(const std::string& path, Options opts);
  ~ReadLockAnchor();  // stops the thread and ends the transaction
  ReadLockAnchor(const ReadLockAnchor&) = delete;
  ReadLockAnchor& operator=(const ReadLockAnchor&) = delete;

  // Before a read: opens the anchor's transaction unless it is open or a
  // write is in progress. A hint only: a failure leaves it closed.
  void Hold();
  // Around a write of this process: BeginWrite ends the transaction and keeps
  // Hold from opening one until the matching EndWrite.
  void BeginWrite();
  void EndWrite();

 private:
  ReadLockAnchor(std::unique_ptr<Connection> conn, Options opts);
  void Run();
  bool OpenLocked();   // requires mu_
  void CloseLocked();  // requires mu_

  const Options opts_;
  std::unique_ptr<Connection> conn_;  // used under mu_ only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                // guarded by mu_
  int writers_ = 0;                                  // guarded by mu_
  std::chrono::steady_clock::time_point opened_at_;  // guarded by mu_
  std::chrono::steady_clock::time_point retry_at_;   // no open before; guarded by mu_
  std::atomic<bool> held_{false};                    // changed under mu_
  std::atomic<bool> used_{false};                    // a read since the thread last looked
  std::thread thread_;
};

}  // namespace ds
