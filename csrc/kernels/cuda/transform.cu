// CUDA transform kernels: the strided copy (cudaMemcpyAsync when both sides are contiguous, a
// shared-memory tiled transpose when the source's contiguous axis is not the destination's,
// else one thread per element), take and its deterministic backward, one_hot. Elements move
// as opaque 1/2/4/8-byte words.
//
// TakeBackward sums each destination row's gradients in increasing j, like the CPU, without
// atomics: the (target row, j) pairs are sorted by a stable radix sort (CUB), bucket starts
// are found by binary search, and one thread per output element sums its bucket in order.
#include <cub/device/device_radix_sort.cuh>

#include <climits>
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/transform.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;
using cudak::kThreads;

constexpr int kTile = 32;

// Source and destination offsets of flat index i over the plan's axes, skipping axes s1, s2.
template <typename I>
__device__ __forceinline__ void CopyOffsets(const CopyPlan& p, I i, int s1, int s2, I* so,
                                            I* dso) {
  I s = 0, d = 0;
  for (int k = p.ndim - 1; k >= 0; k--) {
    if (k == s1 || k == s2) continue;
    const I dim = static_cast<I>(p.shape[k]);
    const I idx = i % dim;
    i /= dim;
    s += idx * static_cast<I>(p.src_stride[k]);
    d += idx * static_cast<I>(p.dst_stride[k]);
  }
  *so = s;
  *dso = d;
}

template <typename U, typename I>
__global__ void CopyKernel(const U* src, U* dst, const CopyPlan p) {
  const I n = static_cast<I>(p.numel);
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I so, dso;
    CopyOffsets<I>(p, i, -1, -1, &so, &dso);
    dst[dso] = src[so];
  }
}

// Tiles of axes j (contiguous in src) and `last` (contiguous in dst): coalesced on both sides.
template <typename U>
__global__ void TransposeKernel(const U* src, U* dst, const CopyPlan p, int j, int64_t tiles_l,
                                int64_t tiles, int64_t outer) {
  __shared__ U tile[kTile][kTile + 1];
  const int last = p.ndim - 1;
  const int64_t nj = p.shape[j], nl = p.shape[last];
  const int64_t sl = p.src_stride[last], dj = p.dst_stride[j];
  for (int64_t o = blockIdx.z; o < outer; o += gridDim.z) {
    int64_t so, dso;
    CopyOffsets<int64_t>(p, o, j, last, &so, &dso);
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
      const int64_t a0 = t / tiles_l * kTile, b0 = t % tiles_l * kTile;
      for (int y = threadIdx.y; y < kTile; y += blockDim.y) {
        const int64_t a = a0 + threadIdx.x, b = b0 + y;
        if (a < nj && b < nl) tile[y][threadIdx.x] = src[so + a + b * sl];
      }
      __syncthreads();
      for (int y = threadIdx.y; y < kTile; y += blockDim.y) {
        const int64_t a = a0 + y, b = b0 + threadIdx.x;
        if (a < nj && b < nl) dst[dso + a * dj + b] = tile[threadIdx.x][y];
      }
      __syncthreads();
    }
  }
}

bool Fits32(const CopyPlan& p) {
  if (p.numel > INT_MAX) return false;
  int64_t ss = 0, ds = 0;
  for (int d = 0; d < p.ndim; d++) {
    ss += (p.shape[d] - 1) * p.src_stride[d];
    ds += (p.shape[d] - 1) * p.dst_stride[d];
  }
  return ss <= INT_MAX && ds <= INT_MAX;
}

template <typename U>
void CopyT(cudaStream_t s, const U* src, U* dst, const CopyPlan& p) {
  const int last = p.ndim - 1;
  if (p.ndim == 1 && p.src_stride[0] == 1 && p.dst_stride[0] == 1) {
    MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, p.numel * sizeof(U), cudaMemcpyDeviceToDevice, s));
    return;
  }
  if (p.dst_stride[last] == 1 && p.src_stride[last] > 1) {
    for (int j = last - 1; j >= 0; j--) {
      if (p.src_stride[j] != 1 || p.shape[j] < 4) continue;
      const int64_t tiles_l = (p.shape[last] + kTile - 1) / kTile;
      const int64_t tiles = tiles_l * ((p.shape[j] + kTile - 1) / kTile);
      const int64_t outer = p.numel / (p.shape[j] * p.shape[last]);
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles, 1 << 20)), 1,
                      static_cast<unsigned>(std::min<int64_t>(outer, 65535)));
      TransposeKernel<U><<<grid, dim3(kTile, 8), 0, s>>>(src, dst, p, j, tiles_l, tiles, outer);
      MS_CUDA_LAUNCH_CHECK("TransposeKernel");
      return;
    }
  }
  if (Fits32(p))
    CopyKernel<U, uint32_t><<<cudak::Blocks(p.numel), kThreads, 0, s>>>(src, dst, p);
  else
    CopyKernel<U, int64_t><<<cudak::Blocks(p.numel), kThreads, 0, s>>>(src, dst, p);
  MS_CUDA_LAUNCH_CHECK("CopyKernel");
}

// *bad = 1 when an index is outside [lo, hi) (`bad` was zeroed first).
__global__ void CheckRangeKernel(const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                                 int32_t* bad) {
  MS_CUDA_LOOP(j, count) {
    if (idx[j] < lo || idx[j] >= hi) *bad = 1;  // every writer stores the same value
  }
}

// *bad = 0, then 1 if an index is outside [lo, hi).
void CheckRange(cudaStream_t s, const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                int32_t* bad) {
  MS_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int32_t), s));
  if (count == 0) return;
  CheckRangeKernel<<<cudak::Blocks(count), kThreads, 0, s>>>(idx, count, lo, hi, bad);
  MS_CUDA_LAUNCH_CHECK("CheckRangeKernel");
}

template <typename U>
__global__ void TakeKernel(const U* x, const int32_t* idx, U* y, int64_t n, int64_t nidx,
                           int64_t inner, int64_t total) {
  MS_CUDA_LOOP(e, total) {
    const int64_t i = e % inner, r = e / inner;
    const int64_t o = r / nidx;
    int64_t t = idx[r % nidx];
    if (t < 0) t += n;
    y[e] = (t < 0 || t >= n) ? U(0) : x[(o * n + t) * inner + i];
  }
}

// Sort keys: the target row of index j, or `bad_key` (after every row) when out of range.
__global__ void TargetKernel(const int32_t* idx, int64_t nidx, int64_t n, uint32_t bad_key,
                             uint32_t* keys, int32_t* vals, int32_t* bad) {
  MS_CUDA_LOOP(j, nidx) {
    int64_t t = idx[j];
    if (t < 0) t += n;
    if (t < 0 || t >= n) {
      *bad = 1;
      keys[j] = bad_key;
    } else {
      keys[j] = static_cast<uint32_t>(t);
    }
    vals[j] = static_cast<int32_t>(j);
  }
}

// start[t] = first sorted position whose key >= t, for t in [0, n].
__global__ void BucketStartKernel(const uint32_t* keys, int64_t nidx, int64_t n, int64_t* start) {
  MS_CUDA_LOOP(t, n + 1) {
    int64_t lo = 0, hi = nidx;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (static_cast<int64_t>(keys[mid]) < t)
        lo = mid + 1;
      else
        hi = mid;
    }
    start[t] = lo;
  }
}

template <typename T>
__global__ void TakeBackwardKernel(const T* dy, const int32_t* order, const int64_t* start,
                                   T* dx, int64_t n, int64_t nidx, int64_t inner,
                                   int64_t total) {
  using Acc = decltype(Cvt<T>::Load(T{}));
  MS_CUDA_LOOP(e, total) {
    const int64_t i = e % inner, r = e / inner;
    const int64_t o = r / n, t = r % n;
    Acc acc = Acc(0);
    for (int64_t k = start[t]; k < start[t + 1]; k++)
      acc += DCvt<T>::Load(dy[(o * nidx + order[k]) * inner + i]);
    dx[e] = DCvt<T>::Store(acc);
  }
}

template <typename T>
void TakeBackwardT(Context* ctx, const T* dy, const int32_t* idx, T* dx, int64_t outer,
                   int64_t n, int64_t nidx, int64_t inner, int32_t* bad) {
  cudaStream_t s = cudak::Stream(ctx);
  MS_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int32_t), s));
  const int64_t total = outer * n * inner;
  if (nidx == 0) {
    if (total > 0) MS_CUDA_CHECK(cudaMemsetAsync(dx, 0, total * sizeof(T), s));
    return;
  }
  MS_CHECK(nidx <= INT_MAX,
           "take_backward: " << nidx << " indices exceed the 2^31 supported on CUDA");
  // Rows are 32-bit sort keys, UINT32_MAX the out-of-range one.
  MS_CHECK(n < static_cast<int64_t>(UINT32_MAX),
           "take_backward: an axis of " << n << " rows exceeds the 2^32 - 1 supported on CUDA");
  // Keys need enough bits for every row index plus the out-of-range key.
  const uint64_t bad_key = static_cast<uint64_t>(std::min<int64_t>(n, UINT32_MAX));
  int end_bit = 1;
  while (end_bit < 32 && (bad_key >> end_bit) != 0) end_bit++;
  const int items = static_cast<int>(nidx);
  size_t temp_bytes = 0;
  MS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, temp_bytes, static_cast<uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), items, 0, end_bit, s));
  const size_t key_bytes = (nidx * sizeof(uint32_t) + 255) / 256 * 256;
  // Every piece 256-byte aligned (CUB's temporary storage too).
  const size_t start_bytes = ((n + 1) * sizeof(int64_t) + 255) / 256 * 256;
  cudak::Scratch scratch(ctx, 4 * key_bytes + start_bytes + temp_bytes);
  char* base = scratch.as<char>();
  uint32_t* keys_in = reinterpret_cast<uint32_t*>(base);
  uint32_t* keys_out = reinterpret_cast<uint32_t*>(base + key_bytes);
  int32_t* vals_in = reinterpret_cast<int32_t*>(base + 2 * key_bytes);
  int32_t* vals_out = reinterpret_cast<int32_t*>(base + 3 * key_bytes);
  int64_t* start = reinterpret_cast<int64_t*>(base + 4 * key_bytes);
  void* temp = base + 4 * key_bytes + start_bytes;
  TargetKernel<<<cudak::Blocks(nidx), kThreads, 0, s>>>(
      idx, nidx, n, static_cast<uint32_t>(bad_key), keys_in, vals_in, bad);
  MS_CUDA_LAUNCH_CHECK("TargetKernel");
  MS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, vals_in,
                                                vals_out, items, 0, end_bit, s));
  if (total == 0) return;
  BucketStartKernel<<<cudak::Blocks(n + 1), kThreads, 0, s>>>(keys_out, nidx, n, start);
  MS_CUDA_LAUNCH_CHECK("BucketStartKernel");
  TakeBackwardKernel<T><<<cudak::Blocks(total), kThreads, 0, s>>>(dy, vals_out, start, dx, n,
                                                                  nidx, inner, total);
  MS_CUDA_LAUNCH_CHECK("TakeBackwardKernel");
}

template <typename T>
__global__ void OneHotKernel(const int32_t* labels, int64_t n, int64_t depth, T* y, T zero,
                             T one) {
  MS_CUDA_LOOP(e, n * depth) y[e] = labels[e / depth] == e % depth ? one : zero;
}

}  // namespace

void StridedCopy(Context* ctx, size_t esize, const void* src, void* dst, const CopyPlan& plan) {
  if (plan.numel <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MS_ESIZE_SWITCH(esize, U, CopyT<U>(s, static_cast<const U*>(src), static_cast<U*>(dst), plan));
}

void Take(Context* ctx, size_t esize, const void* x, const int32_t* idx, void* y, int64_t outer,
          int64_t n, int64_t nidx, int64_t inner, int32_t* bad) {
  cudaStream_t s = cudak::Stream(ctx);
  CheckRange(s, idx, nidx, -n, n, bad);
  const int64_t total = outer * nidx * inner;
  if (total == 0) return;
  MS_ESIZE_SWITCH(esize, U, {
    TakeKernel<U><<<cudak::Blocks(total), kThreads, 0, s>>>(static_cast<const U*>(x), idx,
                                                           static_cast<U*>(y), n, nidx, inner,
                                                           total);
  });
  MS_CUDA_LAUNCH_CHECK("TakeKernel");
}

void TakeBackward(Context* ctx, DType dt, const void* dy, const int32_t* idx, void* dx,
                  int64_t outer, int64_t n, int64_t nidx, int64_t inner, int32_t* bad) {
  MS_TYPE_SWITCH(dt, T,
                 TakeBackwardT<T>(ctx, static_cast<const T*>(dy), idx, static_cast<T*>(dx),
                                  outer, n, nidx, inner, bad));
}

void OneHot(Context* ctx, DType dt, const int32_t* labels, int64_t n, int64_t depth, void* y,
            int32_t* bad) {
  cudaStream_t s = cudak::Stream(ctx);
  CheckRange(s, labels, n, 0, depth, bad);
  if (n == 0 || depth == 0) return;
  MS_TYPE_SWITCH(dt, T, {
    OneHotKernel<T><<<cudak::Blocks(n * depth), kThreads, 0, s>>>(
        labels, n, depth, static_cast<T*>(y), Cvt<T>::Store(0), Cvt<T>::Store(1));
  });
  MS_CUDA_LAUNCH_CHECK("OneHotKernel");
}

void IndexRange(Context* ctx, const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                int32_t* bad) {
  CheckRange(cudak::Stream(ctx), idx, count, lo, hi, bad);
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
