// The calls that GCC's ThreadSanitizer instrumentation puts into the emulated kernels' code
// (setup.py, MSEMU_MEMTRACE=1), answered without the ThreadSanitizer runtime: each load and
// store goes to msemu::RecordAccess (runtime.cc), which counts the accesses of device memory
// made by the sampled blocks of a launch. This file itself is not instrumented.
#include <cstddef>
#include <cstdint>

namespace msemu {
void RecordAccess(const void* p, size_t bytes, const void* pc);
}

#define MS_PC __builtin_return_address(0)

extern "C" {

void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}

#define MS_ACCESS(n)                                                                   \
  void __tsan_read##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }                   \
  void __tsan_write##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }                  \
  void __tsan_unaligned_read##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }         \
  void __tsan_unaligned_write##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }        \
  void __tsan_volatile_read##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }          \
  void __tsan_volatile_write##n(void* p) { msemu::RecordAccess(p, n, MS_PC); }
MS_ACCESS(1)
MS_ACCESS(2)
MS_ACCESS(4)
MS_ACCESS(8)
MS_ACCESS(16)
#undef MS_ACCESS

void __tsan_read_range(void* p, unsigned long n) { msemu::RecordAccess(p, n, MS_PC); }
void __tsan_write_range(void* p, unsigned long n) { msemu::RecordAccess(p, n, MS_PC); }

// Atomics: the operation itself (the emulator runs one thread at a time), and the access.
#define MS_ATOMIC(bits, T)                                                                  \
  T __tsan_atomic##bits##_load(const volatile T* a, int) {                                  \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                            \
  }                                                                                         \
  void __tsan_atomic##bits##_store(volatile T* a, T v, int) {                               \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                               \
  }                                                                                         \
  T __tsan_atomic##bits##_exchange(volatile T* a, T v, int) {                               \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                     \
  }                                                                                         \
  T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int) {                              \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int) {                              \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {   \
    msemu::RecordAccess(const_cast<T*>(a), sizeof(T), MS_PC);                               \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
  }
MS_ATOMIC(8, uint8_t)
MS_ATOMIC(16, uint16_t)
MS_ATOMIC(32, uint32_t)
MS_ATOMIC(64, uint64_t)
#undef MS_ATOMIC

void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) {}

}  // extern "C"
