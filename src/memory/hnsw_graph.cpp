#include "memory/hnsw_graph.h"

#include <malloc.h>
#include <sys/mman.h>

// Every standard header hnswlib includes comes first, so that the malloc
// redirection around hnswlib below reaches hnswlib's own code only.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>  // hnswlib's SSE code
#endif

#include "memory/simd.h"

namespace ds::memory {
namespace {

// Level 0 of the graph (each node's links and vector, ~1.7 KB at 384 dims)
// is read at random by every search: with 4 KiB pages nearly every node a
// search visits costs a TLB miss, and under virtualisation each miss is a
// two-dimensional page walk. 2 MiB pages cover the block with a few hundred
// TLB entries (measured: ANN median at 200k x 384, ef 200, -10%).
// Transparent huge pages are opt-in (madvise mode, Debian's default), and
// only pages first touched after MADV_HUGEPAGE become huge, while hnswlib
// allocates the block with malloc and fills it at once when it loads a graph
// (it has no allocator hook). So hnswlib's malloc and realloc calls are
// redirected to AllocateForHnswlib and ReallocateForHnswlib, which give
// blocks of 2 MiB and more a 2 MiB-aligned, advised block: a loaded graph
// lands on huge pages as it is read, with fewer page faults than on small
// pages, and a grown one as it is copied. (Converting the filled pages
// afterwards, MADV_COLLAPSE, took 0.8 s for 300 MiB; copying them into a
// fresh block added 0.3 s to a server's start.) Advice only: where the
// kernel refuses, 4 KiB pages stay.
constexpr size_t kHugePage = size_t{2} << 20;

// A 2 MiB-aligned block of at least `bytes`, advised for huge pages; null if
// out of memory. free() accepts it, as hnswlib needs.
char* AllocateHugePageBlock(size_t bytes) {
  size_t rounded = (std::max<size_t>(bytes, 1) + kHugePage - 1) & ~(kHugePage - 1);
  void* block = std::aligned_alloc(kHugePage, rounded);
  if (block != nullptr) ::madvise(block, rounded, MADV_HUGEPAGE);
  return static_cast<char*>(block);
}

void* AllocateForHnswlib(size_t bytes) {
  return bytes < kHugePage ? std::malloc(bytes) : AllocateHugePageBlock(bytes);
}

// realloc's contract (on failure null, and `block` stays valid), with large
// results on huge pages: realloc itself may move a block to an address that
// is not 2 MiB-aligned.
void* ReallocateForHnswlib(void* block, size_t bytes) {
  if (bytes < kHugePage) return std::realloc(block, bytes);
  char* moved = AllocateHugePageBlock(bytes);
  if (moved == nullptr) return nullptr;
  if (block != nullptr) {
    std::memcpy(moved, block, std::min(::malloc_usable_size(block), bytes));
    std::free(block);
  }
  return moved;
}

}  // namespace
}  // namespace ds::memory

#define malloc(bytes) ::ds::memory::AllocateForHnswlib(bytes)
#define realloc(block, bytes) ::ds::memory::ReallocateForHnswlib(block, bytes)
#include <hnswlib/hnswlib.h>
#undef realloc
#undef malloc

namespace ds::memory {
namespace {

// Inner-product distance (1 - dot) through our SIMD kernel: hnswlib picks its
// SIMD at compile time and, without -march, falls back to SSE (profiled at
// half of all insert time); ours uses AVX-512/AVX2 when present.
class SimdInnerProductSpace : public hnswlib::SpaceInterface<float> {
 public:
  explicit SimdInnerProductSpace(size_t dim) : param_{dim, ActiveDot()} {}
  size_t get_data_size() override { return param_.dim * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &Distance; }
  void* get_dist_func_param() override { return &param_; }

 private:
  struct Param {
    size_t dim;  // first: hnswlib's getDataByLabel reads the param as a size_t
    DotFn dot;
  };
  static float Distance(const void* a, const void* b, const void* param) {
    const auto* p = static_cast<const Param*>(param);
    return 1.0f - p->dot(static_cast<const float*>(a), static_cast<const float*>(b), p->dim);
  }
  Param param_;
};

}  // namespace

struct HnswGraph::Impl {
  Impl(int dim, HnswParams p) : dim(dim), params(p), space(static_cast<size_t>(dim)) {}
  int dim;
  HnswParams params;
  SimdInnerProductSpace space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index;
  std::unordered_set<int64_t> live;  // labels not marked deleted
  // Add() runs from several builder threads at once (hnswlib's addPoint is
  // thread-safe for distinct labels; the live set and resizing are not).
  std::mutex add_mu;
};

HnswGraph::HnswGraph(int dim, HnswParams params, size_t initial_capacity)
    : impl_(std::make_unique<Impl>(dim, params)) {
  impl_->index = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      &impl_->space, std::max<size_t>(initial_capacity, 1024), static_cast<size_t>(params.m),
      static_cast<size_t>(params.ef_construction));
  impl_->index->ef_ = static_cast<size_t>(params.ef_search);
}

HnswGraph::~HnswGraph() = default;

Result<std::unique_ptr<HnswGraph>> HnswGraph::Load(const std::string& path, int dim,
                                                   HnswParams params) {
  std::unique_ptr<HnswGraph> g(new HnswGraph(dim, params, 1));
  try {
    // hnswlib trusts the file; check the size matches the dimension first.
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::NotFound("no HNSW sidecar at " + path);
    g->impl_->index = std::make_unique<hnswlib::HierarchicalNSW<float>>(&g->impl_->space, path);
    if (g->impl_->index->data_size_ != static_cast<size_t>(dim) * sizeof(float)) {
      return Status::InvalidArgument("HNSW sidecar " + path + " has another dimension");
    }
    g->impl_->index->ef_ = static_cast<size_t>(params.ef_search);
    auto& idx = *g->impl_->index;
    for (size_t i = 0; i < idx.cur_element_count; ++i) {
      auto internal = static_cast<hnswlib::tableint>(i);
      if (!idx.isMarkedDeleted(internal)) {
        g->impl_->live.insert(static_cast<int64_t>(idx.getExternalLabel(internal)));
      }
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot load HNSW sidecar " + path + ": " + e.what());
  }
  return g;
}

Status HnswGraph::Save(const std::string& path) const {
  try {
    std::string tmp = path + ".tmp";
    impl_->index->saveIndex(tmp);
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    return Status::Internal("cannot save HNSW sidecar " + path + ": " + e.what());
  }
  return Status::Ok();
}

Status HnswGraph::Add(int64_t label, const float* vec) {
  try {
    auto& idx = *impl_->index;
    {
      std::lock_guard<std::mutex> lock(impl_->add_mu);
      if (!impl_->live.count(label) && idx.cur_element_count >= idx.max_elements_) {
        idx.resizeIndex(idx.max_elements_ * 2);
      }
    }
    idx.addPoint(vec, static_cast<hnswlib::labeltype>(label));
    std::lock_guard<std::mutex> lock(impl_->add_mu);
    impl_->live.insert(label);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("HNSW insert failed: ") + e.what());
  }
  return Status::Ok();
}

void HnswGraph::Remove(int64_t label) {
  if (!impl_->live.erase(label)) return;
  try {
    impl_->index->markDelete(static_cast<hnswlib::labeltype>(label));
  } catch (const std::exception&) {
    // Unknown label: nothing to delete.
  }
}

bool HnswGraph::Contains(int64_t label) const {
  return impl_->live.count(label) > 0;
}

std::vector<std::pair<int64_t, float>> HnswGraph::Search(const float* query, size_t k) const {
  std::vector<std::pair<int64_t, float>> out;
  if (k == 0 || impl_->live.empty()) return out;
  try {
    auto pq = impl_->index->searchKnn(query, std::min(k, impl_->live.size()));
    out.resize(pq.size());
    // The queue pops the farthest first.
    for (size_t i = pq.size(); i-- > 0;) {
      out[i] = {static_cast<int64_t>(pq.top().second), 1.0f - pq.top().first};
      pq.pop();
    }
  } catch (const std::exception&) {
    out.clear();
  }
  return out;
}

std::vector<float> HnswGraph::Vector(int64_t label) const {
  if (!impl_->live.count(label)) return {};
  try {
    return impl_->index->getDataByLabel<float>(static_cast<hnswlib::labeltype>(label));
  } catch (const std::exception&) {
    return {};
  }
}

void HnswGraph::ForEach(const std::function<void(int64_t, const float*)>& fn) const {
  auto& idx = *impl_->index;
  for (size_t i = 0; i < idx.cur_element_count; ++i) {
    auto internal = static_cast<hnswlib::tableint>(i);
    if (idx.isMarkedDeleted(internal)) continue;
    fn(static_cast<int64_t>(idx.getExternalLabel(internal)),
       reinterpret_cast<const float*>(idx.getDataByInternalId(internal)));
  }
}

size_t HnswGraph::size() const {
  return impl_->live.size();
}
size_t HnswGraph::capacity() const {
  return impl_->index->max_elements_;
}

}  // namespace ds::memory
