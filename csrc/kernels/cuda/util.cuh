// Shared helpers of the CUDA kernels: the device's stream, launch shapes, float16 loads and
// stores, deterministic block/warp reductions, scratch memory from the device pool.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_device.h"
#include "core/device.h"
#include "core/dtype.h"
#include "kernels/fastdiv.h"

namespace minisinga {
namespace cudak {

constexpr int kThreads = 256;       // threads per block of the flat kernels
constexpr int64_t kMaxBlocks = 8192;  // grid-stride loops cover the rest

// The stream of the context's device, with that device made current.
inline cudaStream_t Stream(Context* ctx) {
  static_cast<CudaGPU*>(ctx->dev)->Activate();
  return static_cast<cudaStream_t>(ctx->stream);
}

// Blocks for a grid-stride loop over n items (n >= 1).
inline unsigned Blocks(int64_t n, int threads = kThreads) {
  const int64_t b = std::min(kMaxBlocks, (n + threads - 1) / threads);
  return static_cast<unsigned>(std::max<int64_t>(1, b));
}

// for (i = global thread index; i < n; i += all threads), 64-bit.
#define MS_CUDA_LOOP(i, n)                                                             \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Division with FastDiv's interface for the 64-bit paths of kernels whose sizes may not fit
// FastDiv (index type int64_t there); kernels take either as a template parameter.
struct SlowDiv {
  int64_t d = 1;
  SlowDiv() = default;
  explicit SlowDiv(int64_t v) : d(v) {}
  __device__ __forceinline__ int64_t Div(int64_t n) const { return n / d; }
  __device__ __forceinline__ int64_t Mod(int64_t n) const { return n % d; }
  __device__ __forceinline__ int64_t divisor() const { return d; }
};

// Whether every index below `n` (a count of elements) fits FastDiv's dividends (< 2^31).
inline bool Fits31(int64_t n) { return n >= 0 && n < (int64_t{1} << 31); }

// Loads and stores as the compute type, like Cvt<T> but with the hardware float16
// conversions on the device (round to nearest even, the same results as Cvt<half_t>).
template <typename T>
struct DCvt {
  static __device__ __forceinline__ auto Load(T v) { return Cvt<T>::Load(v); }
  template <typename C>
  static __device__ __forceinline__ T Store(C v) {
    return Cvt<T>::Store(v);
  }
};
template <>
struct DCvt<half_t> {
  static __device__ __forceinline__ float Load(half_t v) {
    return __half2float(__ushort_as_half(v.bits));
  }
  static __device__ __forceinline__ half_t Store(float v) {
    return half_t{__half_as_ushort(__float2half_rn(v))};
  }
};

__device__ __forceinline__ bool IsNan(float v) { return v != v; }
__device__ __forceinline__ bool IsNan(double v) { return v != v; }
__device__ __forceinline__ bool IsNan(int32_t) { return false; }
__device__ __forceinline__ float NaNf() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float Inff() { return __int_as_float(0x7f800000); }

// Tree reduction over a warp with a binary op; every lane gets the result. The shape of the
// tree is fixed, so results are deterministic.
template <typename V, typename Op>
__device__ __forceinline__ V WarpReduce(V v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Tree reduction over a block of kThreads threads (blockDim.x == kThreads); the result is
// valid in thread 0. `smem` holds kThreads values.
template <typename V, typename Op>
__device__ __forceinline__ V BlockReduce(V v, V* smem, Op op) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s)
      smem[threadIdx.x] = op(smem[threadIdx.x], smem[threadIdx.x + s]);
    __syncthreads();
  }
  return smem[0];
}

// Tree reduction over the whole block (blockDim.x a multiple of 32, at most 1024): warps
// reduce by shuffles, then every thread combines the warp results in warp order, so all
// threads return the same, deterministic value. Safe to call repeatedly.
template <typename V, typename Op>
__device__ __forceinline__ V BlockAllReduce(V v, Op op) {
  __shared__ V part[32];
  v = WarpReduce(v, op);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // the previous call's readers are done with `part`
  if (lane == 0) part[warp] = v;
  __syncthreads();
  V r = part[0];
  for (int k = 1; k < static_cast<int>(blockDim.x >> 5); k++) r = op(r, part[k]);
  return r;
}

// Device memory from the pool for the length of a kernel launcher. Freed back to the pool
// before the kernels that use it have run: safe, since every later user of that memory is
// queued behind them on the same stream.
class Scratch {
 public:
  Scratch(Context* ctx, size_t bytes) : dev_(ctx->dev), bytes_(bytes) {
    if (bytes_) p_ = dev_->Malloc(bytes_);
  }
  ~Scratch() {
    if (p_) dev_->Free(p_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  Device* dev_;
  size_t bytes_;
  void* p_ = nullptr;
};

}  // namespace cudak
}  // namespace minisinga
