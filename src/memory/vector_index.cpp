#include "memory/vector_index.h"

#include <algorithm>
#include <mutex>

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
bool HeapCmp(const VectorHit& a, const VectorHit& b) { return Worse(b, a); }
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

float TopK::threshold() const { return heap_.empty() ? -1e30f : heap_.front().similarity; }

std::vector<VectorHit> TopK::Take() {
  std::vector<VectorHit> out = std::move(heap_);
  heap_.clear();
  std::sort(out.begin(), out.end(), [](const VectorHit& a, const VectorHit& b) { return Worse(b, a); });
  return out;
}

VectorIndex::VectorIndex(int dim) : dim_(dim) {}

void VectorIndex::Upsert(const std::string& partition, int64_t memory_id, const float* vec,
                         VectorMeta meta) {
  std::unique_lock lock(mu_);
  Partition& p = partitions_[partition];
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
    p.slot.emplace(memory_id, slot);
  }
  std::copy(vec, vec + dim_, p.rows.begin() + static_cast<std::ptrdiff_t>(slot * dim_));
}

void VectorIndex::SetMeta(const std::string& partition, int64_t memory_id, VectorMeta meta) {
  std::unique_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end()) return;
  auto it = pit->second.slot.find(memory_id);
  if (it != pit->second.slot.end()) pit->second.meta[it->second] = meta;
}

void VectorIndex::RemoveAnywhere(int64_t memory_id) {
  std::vector<std::string> holders;
  {
    std::shared_lock lock(mu_);
    for (const auto& [name, p] : partitions_) {
      if (p.slot.count(memory_id)) holders.push_back(name);
    }
  }
  for (const auto& name : holders) Remove(name, memory_id);
}

void VectorIndex::Remove(const std::string& partition, int64_t memory_id) {
  std::unique_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end()) return;
  Partition& p = pit->second;
  auto it = p.slot.find(memory_id);
  if (it == p.slot.end()) return;
  size_t hole = it->second;
  size_t last = p.ids.size() - 1;
  if (hole != last) {
    std::copy(p.rows.begin() + static_cast<std::ptrdiff_t>(last * dim_),
              p.rows.begin() + static_cast<std::ptrdiff_t>((last + 1) * dim_),
              p.rows.begin() + static_cast<std::ptrdiff_t>(hole * dim_));
    p.ids[hole] = p.ids[last];
    p.meta[hole] = p.meta[last];
    p.slot[p.ids[hole]] = hole;
  }
  p.ids.pop_back();
  p.meta.pop_back();
  p.rows.resize(p.rows.size() - static_cast<size_t>(dim_));
  p.slot.erase(memory_id);
}

std::vector<VectorHit> VectorIndex::Search(const std::string& partition, const float* query,
                                           size_t k, uint32_t type_mask, bool include_dead,
                                           const std::function<bool(int64_t)>& accept) const {
  std::shared_lock lock(mu_);
  auto pit = partitions_.find(partition);
  if (pit == partitions_.end() || k == 0) return {};
  const Partition& p = pit->second;
  TopK top(k);
  constexpr size_t kBlock = 256;
  float scores[kBlock];
  const size_t n = p.ids.size();
  for (size_t base = 0; base < n; base += kBlock) {
    size_t count = std::min(kBlock, n - base);
    DotBatch(query, p.rows.data() + base * dim_, static_cast<size_t>(dim_), count, scores);
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

size_t VectorIndex::Size(const std::string& partition) const {
  std::shared_lock lock(mu_);
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.ids.size();
}

size_t VectorIndex::TotalSize() const {
  std::shared_lock lock(mu_);
  size_t n = 0;
  for (const auto& [k, p] : partitions_) n += p.ids.size();
  return n;
}

size_t VectorIndex::VectorBytes() const {
  std::shared_lock lock(mu_);
  size_t n = 0;
  for (const auto& [k, p] : partitions_) n += p.rows.size() * sizeof(float);
  return n;
}

}  // namespace ds::memory
