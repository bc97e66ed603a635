// A caching allocator: freed blocks are kept in per-size free lists and reused.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace minisinga {

struct MemoryStats {
  size_t current = 0;      // bytes held by live blocks
  size_t peak = 0;         // high-water mark of `current`
  size_t allocations = 0;  // number of Malloc calls served
  size_t reserved = 0;     // bytes obtained from the system (live + cached)
  size_t system_allocs = 0;  // allocations that reached the system allocator
};

class CachingPool {
 public:
  using RawAlloc = std::function<void*(size_t)>;
  using RawFree = std::function<void(void*)>;
  CachingPool(RawAlloc alloc, RawFree free) : alloc_(alloc), free_(free) {}
  ~CachingPool();

  void* Malloc(size_t bytes);
  void Free(void* ptr, size_t bytes);
  // Returns cached (unused) memory to the system.
  void EmptyCache();
  // Off: cached memory goes back to the system now, and so does every block freed later.
  void SetCaching(bool on);
  MemoryStats Stats() const;
  void ResetPeak();
  // Sizes are rounded up so that nearby requests share free lists.
  static size_t RoundUp(size_t bytes);

  // Hold mode (for CUDA-graph capture): while on, Free keeps pointers in a private free list
  // that only Malloc calls made in hold mode reuse (before the shared lists), so memory that a
  // captured graph uses stays reserved for its replays. ReleaseHeld returns that list to the
  // shared cache once the captured graph is gone.
  void SetHold(bool on);
  void ReleaseHeld();

 private:
  RawAlloc alloc_;
  RawFree free_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;
  std::unordered_map<size_t, std::vector<void*>> held_;  // hold mode's private free lists
  bool hold_ = false;
  bool caching_ = true;
  MemoryStats stats_;
};

}  // namespace minisinga
