#include "store/read_lock_anchor.h"

#include <algorithm>

#include "store/database.h"

namespace ds {

Result<std::unique_ptr<ReadLockAnchor>> ReadLockAnchor::Open(const std::string& path,
                                                             Options opts) {
  Connection::Options copts;
  copts.read_only = true;
  copts.mapped = false;       // it reads one page once per transaction
  copts.busy_timeout_ms = 0;  // a hint must never make a read wait
  DS_ASSIGN_OR_RETURN(auto conn, Connection::Open(path, copts));
  return std::unique_ptr<ReadLockAnchor>(new ReadLockAnchor(std::move(conn), opts));
}

ReadLockAnchor::ReadLockAnchor(std::unique_ptr<Connection> conn, Options opts)
    : opts_(opts), conn_(std::move(conn)), thread_([this] { Run(); }) {}

ReadLockAnchor::~ReadLockAnchor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReadLockAnchor::Hold() {
  if (held_.load(std::memory_order_acquire)) {
    // Only the thread clears it; skipping the store when set keeps the cache
    // line shared between the request threads.
    if (!used_.load(std::memory_order_relaxed)) used_.store(true, std::memory_order_relaxed);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (held_.load(std::memory_order_relaxed) || writers_ > 0 || stop_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < retry_at_) return;
  if (OpenLocked()) {
    cv_.notify_all();
  } else {
    retry_at_ = now + opts_.idle;  // e.g. another process is recovering the WAL
  }
}

void ReadLockAnchor::BeginWrite() {
  std::lock_guard<std::mutex> lock(mu_);
  ++writers_;
  CloseLocked();
}

void ReadLockAnchor::EndWrite() {
  std::lock_guard<std::mutex> lock(mu_);
  --writers_;
}

bool ReadLockAnchor::OpenLocked() {
  if (!conn_->Exec("BEGIN").ok()) return false;
  // Reading a page starts the read transaction, and with it the WAL read lock.
  bool ok = false;
  if (auto stmt = conn_->Prepare("SELECT 1 FROM sqlite_schema LIMIT 1"); stmt.ok()) {
    ok = stmt->Step().ok();
  }
  if (!ok) {
    conn_->Exec("ROLLBACK").ok();
    return false;
  }
  opened_at_ = std::chrono::steady_clock::now();
  used_.store(true, std::memory_order_relaxed);
  held_.store(true, std::memory_order_release);
  return true;
}

void ReadLockAnchor::CloseLocked() {
  if (!held_.load(std::memory_order_relaxed)) return;
  held_.store(false, std::memory_order_release);
  conn_->Exec("COMMIT").ok();
}

void ReadLockAnchor::Run() {
  // The thread looks every `tick`; idle means no read in `idle_ticks` looks.
  const auto tick = std::max(std::chrono::milliseconds(1), std::min(opts_.idle, opts_.max_age) / 2);
  const auto idle_ticks = std::max<int64_t>(1, opts_.idle / tick);
  int64_t unused = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!held_.load(std::memory_order_relaxed)) {
      cv_.wait(lock, [this] { return stop_ || held_.load(std::memory_order_relaxed); });
      unused = 0;
      continue;
    }
    cv_.wait_for(lock, tick, [this] { return stop_; });
    if (stop_ || !held_.load(std::memory_order_relaxed)) continue;
    unused = used_.exchange(false, std::memory_order_relaxed) ? 0 : unused + 1;
    const auto now = std::chrono::steady_clock::now();
    if (now - opened_at_ >= opts_.max_age) {
      // The other processes' turn; the first read after the gap reopens it.
      CloseLocked();
      retry_at_ = now + opts_.gap;
    } else if (unused >= idle_ticks) {
      CloseLocked();
    }
  }
  CloseLocked();
}

}  // namespace ds
