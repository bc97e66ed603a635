#include "core/pool.h"

#include "core/common.h"

// Under AddressSanitizer (MINISINGA_SANITIZE=address; CPU and emulated-CUDA builds only), the
// slack after a block's requested bytes and every cached block are poisoned, so a kernel that
// reads past its tensor or into freed memory is caught although the pool keeps the memory.
// Blocks handed out or freed in hold mode stay wholly addressable: a captured CUDA graph's
// launches reuse them in the order of the capture, which no Malloc/Free retraces.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define MS_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MS_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MS_POISON(p, n) ((void)(p), (void)(n))
#define MS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace minisinga {

size_t CachingPool::RoundUp(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes <= (1u << 20)) return (bytes + 511) / 512 * 512;
  // Above 1 MiB: round to a multiple of 1/8 of the next power of two (<= 12.5% waste).
  size_t p = 1;
  while (p < bytes) p <<= 1;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

CachingPool::~CachingPool() {
  ReleaseHeld();
  EmptyCache();
}

void* CachingPool::Malloc(size_t bytes) {
  MS_CHECK(bytes <= (size_t{1} << 62), "out of memory: " << bytes << " bytes asked for");
  size_t sz = RoundUp(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto held = hold_ ? held_.find(sz) : held_.end();
  auto it = free_lists_.find(sz);
  if (held != held_.end() && !held->second.empty()) {
    p = held->second.back();
    held->second.pop_back();
  } else if (it != free_lists_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    p = alloc_(sz);
    if (p == nullptr) {
      // Release the cache and retry once before giving up.
      for (auto& kv : free_lists_)
        for (void* q : kv.second) {
          MS_UNPOISON(q, kv.first);
          free_(q);
          stats_.reserved -= kv.first;
        }
      free_lists_.clear();
      p = alloc_(sz);
      if (p == nullptr)
        MS_FAIL("out of memory: could not allocate " << sz << " bytes (" << stats_.current
                                                     << " bytes in use)");
    }
    stats_.reserved += sz;
    stats_.system_allocs++;
  }
  stats_.current += sz;
  stats_.allocations++;
  if (stats_.current > stats_.peak) stats_.peak = stats_.current;
  if (hold_) {  // a captured graph may use the block at other sizes later: all of it
    MS_UNPOISON(p, sz);
  } else {
    MS_UNPOISON(p, bytes);
    MS_POISON(static_cast<char*>(p) + bytes, sz - bytes);
  }
  return p;
}

void CachingPool::Free(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  size_t sz = RoundUp(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (hold_) {
    held_[sz].push_back(ptr);
  } else if (!caching_) {
    free_(ptr);
    stats_.reserved -= sz;
  } else {
    free_lists_[sz].push_back(ptr);
    MS_POISON(ptr, sz);
  }
  stats_.current -= sz;
}

void CachingPool::SetHold(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_ = on;
}

void CachingPool::ReleaseHeld() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : held_) {
    auto& dst = free_lists_[kv.first];
    for (void* q : kv.second) MS_POISON(q, kv.first);
    dst.insert(dst.end(), kv.second.begin(), kv.second.end());
  }
  held_.clear();
}

void CachingPool::SetCaching(bool on) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    caching_ = on;
  }
  if (!on) EmptyCache();
}

void CachingPool::EmptyCache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : free_lists_)
    for (void* q : kv.second) {
      MS_UNPOISON(q, kv.first);
      free_(q);
      stats_.reserved -= kv.first;
    }
  free_lists_.clear();
}

MemoryStats CachingPool::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingPool::ResetPeak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.current;
}

}  // namespace minisinga
