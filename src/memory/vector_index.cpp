#include "memory/vector_index.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>

#include "memory/simd.h"

namespace ds::memory {
namespace {
// "a is worse than b": lower similarity, or equal similarity and larger id.
bool Worse(const VectorHit& a, const VectorHit& b) {
  if (a.similarity != b.similarity) return a.similarity < b.similarity;
  return a.memory_id > b.memory_id;
}
// std heap functions build a max-heap under the comparator; "better" on top
// would be a max-heap of best. We want the worst on top: compare by !Worse.
bool HeapCmp(const VectorHit& a, const VectorHit& b) {
  return Worse(b, a);
}
}  // namespace

void TopK::Push(int64_t id, float score) {
  if (k_ == 0) return;
  VectorHit h{id, score};
  if (heap_.size() < k_) {
    heap_.push_back(h);
    std::push_heap(heap_.begin(), heap_.end(), HeapCmp);
    return;
  }
  if (!Worse(heap_.front(), h)) return;
  std::pop_heap(heap_.begin(), heap_.end(), HeapCmp);
  heap_.back() = h;
  std::push_heap(heap_.begin(), heap_.end(), HeapCmp);
}

float TopK::threshold() const {
  return heap_.empty() ? -1e30f : heap_.front().similarity;
}

std::vector<VectorHit> TopK::Take() {
  std::vector<VectorHit> out = std::move(heap_);
  heap_.clear();
  std::sort(out.begin(), out.end(),
            [](const VectorHit& a, const VectorHit& b) { return Worse(b, a); });
  return out;
}

VectorIndex::VectorIndex(int dim, VectorIndexOptions opts) : dim_(dim), opts_(opts) {}

VectorIndex::~VectorIndex() {
  {
    std::lock_guard<std::mutex> lock(promo_mu_);
    promo_stop_ = true;
  }
  promo_cv_.notify_all();
  if (promoter_.joinable()) promoter_.join();
}

void VectorIndex::MaybeQueuePromotion(const std::string& name, Partition& p) {
  if (p.hnsw || p.promoting || bulk_loading_ || p.ids.size() < opts_.hnsw_threshold) return;
  p.promoting = true;
  std::lock_guard<std::mutex> lock(promo_mu_);
  promo_queue_.push_back(name);
  if (!promoter_.joinable()) promoter_ = std::thread([this] { PromoterLoop(); });
  promo_cv_.notify_one();
}

void VectorIndex::PromoterLoop() {
  std::unique_lock<std::mutex> lock(promo_mu_);
  for (;;) {
    promo_cv_.wait(lock, [&] { return promo_stop_ || !promo_queue_.empty(); });
    if (promo_stop_) return;
    std::string name = promo_queue_.front();
    promo_queue_.pop_front();
    ++promo_running_;
    lock.unlock();
    Promote(name);
    lock.lock();
    --promo_running_;
    promo_cv_.notify_all();
  }
}

bool VectorIndex::FinishPromotions(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(promo_mu_);
  bool done = promo_cv_.wait_for(
      lock, timeout, [&] { return promo_stop_ || (promo_queue_.empty() && promo_running_ == 0); });
  promo_stop_ = true;
  if (!done) promo_abandon_ = true;
  promo_cv_.notify_all();
  promo_cv_.wait(lock, [&] { return promo_running_ == 0; });
  return done;
}

void VectorIndex::WaitForPromotions() {
  std::unique_lock<std::mutex> lock(promo_mu_);
  promo_cv_.wait(lock,
                 [&] { return promo_stop_ || (promo_queue_.empty() && promo_running_ == 0); });
}

void VectorIndex::Promote(const std::string& name) {
  std::vector<int64_t> ids;
  std::vector<float> rows;
  uint64_t epoch = 0;
  {
    std::unique_lock lock(mu_);
    auto it = partitions_.find(name);
    if (it == partitions_.end() || it->second.hnsw) return;
    epoch = it->second.epoch;
    ids = it->second.ids;
    rows = it->second.rows;
    it->second.dirty.clear();
    it->second.promoting = true;
  }
  // Build without holding the index lock: searches keep using the flat rows.
  auto graph = std::make_unique<HnswGraph>(dim_, opts_.hnsw, ids.size() + ids.size() / 4);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i = next++; i < ids.size() && !failed && !promo_abandon_; i = next++) {
      if (!graph->Add(ids[i], rows.data() + i * dim_).ok()) failed = true;
    }
  };
  unsigned threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (promo_abandon_) failed = true;
  std::unique_lock lock(mu_);
  auto it = partitions_.find(name);
  // Gone, or replaced by a reload (Clear) while we were building: discard.
  if (it == partitions_.end() || it->second.epoch != epoch) return;
  Partition& p = it->second;
  p.promoting = false;
  if (failed || p.hnsw) return;  // stay flat; a later write queues it again
  // Re-apply what changed while the graph was being built.
  for (int64_t id : p.dirty) {
    auto slot = p.slot.find(id);
    if (slot == p.slot.end()) {
      graph->Remove(id);
    } else if (!graph->Add(id, p.rows.data() + slot->second * dim_).ok()) {
      return;
    }
  }
  p.dirty.clear();
  for (size_t i = 0; i < p.ids.size(); ++i) p.hnsw_meta[p.ids[i]] = p.meta[i];
  p.hnsw = std::move(graph);
  std::vector<float>().swap(p.rows);
  std::vector<int8_t>().swap(p.qrows);
  std::vector<float>().swap(p.qscale);
  std::vector<int64_t>().swap(p.ids);
  std::vector<VectorMeta>().swap(p.meta);
  std::unordered_map<int64_t, size_t>().swap(p.slot);
}

void VectorIndex::BeginBulkLoad() {
  std::unique_lock lock(mu_);
  bulk_loading_ = true;
}

void VectorIndex::EndBulkLoad() {
  std::unique_lock lock(mu_);
  bulk_loading_ = false;
  for (auto& [name, p] : partitions_) MaybeQueuePromotion(name, p);
}

void VectorIndex::Upsert(const std::string& partition, int64_t memory_id, const float* vec,
                         VectorMeta meta) {
  std::unique_lock lock(mu_);
  Partition& p = partitions_[partition];
  if (p.epoch == 0) p.epoch = next_epoch_++;
  if (p.hnsw) {
    if (p.hnsw->Add(memory_id, vec).ok()) p.hnsw_meta[memory_id] = meta;
    return;
  }
  auto it = p.slot.find(memory_id);
  size_t slot;
  if (it != p.slot.end()) {
    slot = it->second;
    p.meta[slot] = meta;
  } else {
    slot = p.ids.size();
    p.ids.push_back(memory_id);
    p.meta.push_back(meta);
    p.rows.resize(p.rows.size() + static_cast<size_t>(dim_));
    if (opts_.int8_scan) {
      p.qrows.resize(p.rows.size());
      p.qscale.push_back(0);
    }
    p.slot.emplace(memory_id, slot);
  }
  std::copy(vec, vec + dim_, p.rows.begin() + static_cast<std::ptrdiff_t>(slot * dim_));
  if (opts_.int8_scan) {
    p.qscale[slot] = QuantizeInt8(vec, static_cast<size_t>(dim_), p.qrows.data() + slot * dim_);
  }
  if (p.promoting) p.dirty.insert(memory_id);
  MaybeQueuePromotion(partition, p);
}

void VectorIndex::SetMeta(const std::string& partition, int64_t memory_id, VectorMeta meta) {
  std::unique_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end()) return;
  Partition& p = pit->second;
  if (p.hnsw) {
    auto it = p.hnsw_meta.find(memory_id);
    if (it != p.hnsw_meta.end()) it->second = meta;
    return;
  }
  auto it = p.slot.find(memory_id);
  if (it != p.slot.end()) p.meta[it->second] = meta;
}

void VectorIndex::Clear() {
  std::unique_lock lock(mu_);
  partitions_.clear();  // an in-flight background build finds its partition gone
}

void VectorIndex::RemoveAnywhere(int64_t memory_id) {
  std::vector<std::string> holders;
  {
    std::shared_lock lock(mu_);
    for (const auto& [name, p] : partitions_) {
      if (p.slot.count(memory_id) || p.hnsw_meta.count(memory_id)) holders.push_back(name);
    }
  }
  for (const auto& name : holders) Remove(name, memory_id);
}

void VectorIndex::Remove(const std::string& partition, int64_t memory_id) {
  std::unique_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end()) return;
  RemoveLocked(pit->second, memory_id);
}

void VectorIndex::RemoveLocked(Partition& p, int64_t memory_id) {
  if (p.promoting) p.dirty.insert(memory_id);
  if (p.hnsw) {
    p.hnsw->Remove(memory_id);
    p.hnsw_meta.erase(memory_id);
    return;
  }
  auto it = p.slot.find(memory_id);
  if (it == p.slot.end()) return;
  size_t hole = it->second;
  size_t last = p.ids.size() - 1;
  if (hole != last) {
    std::copy(p.rows.begin() + static_cast<std::ptrdiff_t>(last * dim_),
              p.rows.begin() + static_cast<std::ptrdiff_t>((last + 1) * dim_),
              p.rows.begin() + static_cast<std::ptrdiff_t>(hole * dim_));
    if (opts_.int8_scan) {
      std::copy(p.qrows.begin() + static_cast<std::ptrdiff_t>(last * dim_),
                p.qrows.begin() + static_cast<std::ptrdiff_t>((last + 1) * dim_),
                p.qrows.begin() + static_cast<std::ptrdiff_t>(hole * dim_));
      p.qscale[hole] = p.qscale[last];
    }
    p.ids[hole] = p.ids[last];
    p.meta[hole] = p.meta[last];
    p.slot[p.ids[hole]] = hole;
  }
  p.ids.pop_back();
  p.meta.pop_back();
  p.rows.resize(p.rows.size() - static_cast<size_t>(dim_));
  if (opts_.int8_scan) {
    p.qrows.resize(p.rows.size());
    p.qscale.pop_back();
  }
  p.slot.erase(memory_id);
}

std::vector<VectorHit> VectorIndex::Search(const std::string& partition, const float* query,
                                           size_t k, uint32_t type_mask, bool include_dead,
                                           const std::function<bool(int64_t)>& accept) const {
  std::shared_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end() || k == 0) return {};
  const Partition& p = pit->second;
  auto admit = [&](int64_t id, const VectorMeta& m) {
    if (!include_dead && !m.live) return false;
    if (type_mask && !(type_mask & m.content_type_bit)) return false;
    return !accept || accept(id);
  };
  if (p.hnsw) {
    // Over-fetch and post-filter; widen while filters reject too much, then
    // fall back to an exact scan of the graph's storage.
    const size_t live = p.hnsw->size();
    for (size_t fetch = std::max<size_t>(k * 2, 32);; fetch *= 4) {
      TopK top(k);
      auto hits = p.hnsw->Search(query, std::min(fetch, live));
      for (const auto& [id, sim] : hits) {
        auto m = p.hnsw_meta.find(id);
        if (m != p.hnsw_meta.end() && admit(id, m->second)) top.Push(id, sim);
      }
      if (top.full() || hits.size() >= live) return top.Take();
      if (fetch >= 4096) break;
    }
    TopK top(k);
    p.hnsw->ForEach([&](int64_t id, const float* v) {
      auto m = p.hnsw_meta.find(id);
      if (m == p.hnsw_meta.end() || !admit(id, m->second)) return;
      top.Push(id, Dot(query, v, static_cast<size_t>(dim_)));
    });
    return top.Take();
  }
  constexpr size_t kBlock = 256;
  const size_t n = p.ids.size();
  if (opts_.int8_scan && p.qscale.size() == n) {
    // Quantised pass for candidates, then exact float re-rank.
    std::vector<int8_t> q(static_cast<size_t>(dim_));
    float qs = QuantizeInt8(query, static_cast<size_t>(dim_), q.data());
    TopK candidates(k * std::max<size_t>(opts_.int8_rerank, 1));
    int32_t iscores[kBlock];
    std::unordered_map<int64_t, size_t> cand_slot;
    for (size_t base = 0; base < n; base += kBlock) {
      size_t count = std::min(kBlock, n - base);
      DotBatchInt8(q.data(), p.qrows.data() + base * dim_, static_cast<size_t>(dim_), count,
                   iscores);
      for (size_t i = 0; i < count; ++i) {
        const VectorMeta& m = p.meta[base + i];
        if (!include_dead && !m.live) continue;
        if (type_mask && !(type_mask & m.content_type_bit)) continue;
        float approx = static_cast<float>(iscores[i]) * qs * p.qscale[base + i];
        if (candidates.full() && approx < candidates.threshold()) continue;
        int64_t id = p.ids[base + i];
        if (accept && !accept(id)) continue;
        candidates.Push(id, approx);
      }
    }
    TopK top(k);
    for (const auto& c : candidates.Take()) {
      size_t row = p.slot.at(c.memory_id);
      top.Push(c.memory_id, Dot(query, p.rows.data() + row * dim_, static_cast<size_t>(dim_)));
    }
    return top.Take();
  }
  TopK top(k);
  float scores[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    size_t count = std::min(kBlock, n - base);
    DotBatch(query, p.rows.data() + base * dim_, static_cast<size_t>(dim_), count, scores,
             n - base);
    for (size_t i = 0; i < count; ++i) {
      const VectorMeta& m = p.meta[base + i];
      if (!include_dead && !m.live) continue;
      if (type_mask && !(type_mask & m.content_type_bit)) continue;
      if (top.full() && scores[i] < top.threshold()) continue;
      int64_t id = p.ids[base + i];
      if (accept && !accept(id)) continue;
      top.Push(id, scores[i]);
    }
  }
  return top.Take();
}

namespace {
size_t Count(const auto& p) {
  return p.hnsw ? p.hnsw->size() : p.ids.size();
}
}  // namespace

size_t VectorIndex::Size(const std::string& partition) const {
  std::shared_lock lock(mu_);
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : Count(it->second);
}

size_t VectorIndex::TotalSize() const {
  std::shared_lock lock(mu_);
  size_t n = 0;
  for (const auto& [k, p] : partitions_) n += Count(p);
  return n;
}

size_t VectorIndex::VectorBytes() const {
  std::shared_lock lock(mu_);
  size_t n = 0;
  for (const auto& [k, p] : partitions_) n += Count(p) * static_cast<size_t>(dim_) * sizeof(float);
  return n;
}

bool VectorIndex::IsHnsw(const std::string& partition) const {
  std::shared_lock lock(mu_);
  auto it = partitions_.find(partition);
  return it != partitions_.end() && it->second.hnsw != nullptr;
}

std::vector<std::string> VectorIndex::Partitions() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, p] : partitions_) out.push_back(name);
  return out;
}

Status VectorIndex::SaveGraph(const std::string& partition, const std::string& path) const {
  std::unique_lock lock(mu_);  // hnswlib's save must not race with inserts
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || !it->second.hnsw) {
    return Status::NotFound("partition " + partition + " has no HNSW graph");
  }
  return it->second.hnsw->Save(path);
}

Status VectorIndex::LoadGraph(const std::string& partition, const std::string& path,
                              const std::unordered_map<int64_t, VectorMeta>& meta) {
  DS_ASSIGN_OR_RETURN(auto graph, HnswGraph::Load(path, dim_, opts_.hnsw));
  std::vector<int64_t> stale;
  graph->ForEach([&](int64_t id, const float*) {
    if (!meta.count(id)) stale.push_back(id);
  });
  for (int64_t id : stale) graph->Remove(id);
  std::unique_lock lock(mu_);
  Partition& p = partitions_[partition];
  p = Partition();
  p.epoch = next_epoch_++;
  p.hnsw = std::move(graph);
  for (const auto& [id, m] : meta) {
    if (p.hnsw->Contains(id)) p.hnsw_meta[id] = m;
  }
  return Status::Ok();
}

}  // namespace ds::memory
