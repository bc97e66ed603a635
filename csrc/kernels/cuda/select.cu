// CUDA sparse selection. KthLargestAbs: radix select over the bits of |v| (non-negative floats
// order like their bit patterns), 8 bits a pass, each pass a 256-bin histogram read back.
// SelectAbs: order-preserving compaction by tiles: per-tile counts, tile offsets on the host,
// then every tile writes its indices after two block-wide scans.
#include <cstring>
#include <vector>

#include "kernels/cuda/util.cuh"
#include "kernels/select.h"

namespace minisinga {
namespace kernels {
namespace cuda {

using cudak::Blocks;
using cudak::kThreads;
using cudak::Scratch;
using cudak::Stream;

namespace {

constexpr int kSelThreads = 256;
constexpr int kItems = 16;  // consecutive entries per thread
constexpr int64_t kTile = int64_t{kSelThreads} * kItems;

__device__ __forceinline__ float Mag(float x) { return x != x ? 0.0f : fabsf(x); }
__device__ __forceinline__ uint32_t Key(float x) { return __float_as_uint(Mag(x)); }

__global__ void HistKernel(const float* v, int64_t n, uint32_t prefix, uint32_t mask,
                           int shift, unsigned* hist) {
  __shared__ unsigned h[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) h[i] = 0;
  __syncthreads();
  MS_CUDA_LOOP(i, n) {
    const uint32_t k = Key(v[i]);
    if ((k & mask) == prefix) atomicAdd(&h[(k >> shift) & 255u], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    if (h[i]) atomicAdd(&hist[i], h[i]);
}

// Exclusive prefix sum of x over the block's threads; *total gets the block's sum.
__device__ unsigned BlockExclusiveScan(unsigned x, unsigned* total) {
  __shared__ unsigned s[kSelThreads];
  s[threadIdx.x] = x;
  __syncthreads();
  for (int off = 1; off < kSelThreads; off <<= 1) {
    const unsigned y = static_cast<int>(threadIdx.x) >= off ? s[threadIdx.x - off] : 0u;
    __syncthreads();
    s[threadIdx.x] += y;
    __syncthreads();
  }
  const unsigned inclusive = s[threadIdx.x];
  *total = s[kSelThreads - 1];
  __syncthreads();  // s is reused by the next call
  return inclusive - x;
}

// Thread j of tile b owns entries b*kTile + j*kItems ... + kItems - 1.
__device__ __forceinline__ void CountOwn(const float* v, int64_t n, float t, unsigned* gt,
                                         unsigned* eq) {
  const int64_t base = blockIdx.x * kTile + int64_t{threadIdx.x} * kItems;
  unsigned g = 0, e = 0;
  for (int j = 0; j < kItems; j++) {
    const int64_t i = base + j;
    if (i < n) {
      const float m = Mag(v[i]);
      g += m > t;
      e += m == t;
    }
  }
  *gt = g;
  *eq = e;
}

__global__ void CountKernel(const float* v, int64_t n, float t, long long* gt, long long* eq) {
  unsigned g, e, gsum, esum;
  CountOwn(v, n, t, &g, &e);
  BlockExclusiveScan(g, &gsum);
  BlockExclusiveScan(e, &esum);
  if (threadIdx.x == 0) {
    gt[blockIdx.x] = gsum;
    eq[blockIdx.x] = esum;
  }
}

// out_off[b]: where tile b's first index goes; eq_off[b]: ties in the tiles before b.
__global__ void WriteKernel(const float* v, int64_t n, float t, long long ties,
                            const long long* out_off, const long long* eq_off, int32_t* idx) {
  unsigned g, e, total;
  CountOwn(v, n, t, &g, &e);
  const unsigned gpre = BlockExclusiveScan(g, &total);
  const unsigned epre = BlockExclusiveScan(e, &total);
  long long rank = eq_off[blockIdx.x] + epre;  // tie rank of this thread's first tie
  const long long left = ties - eq_off[blockIdx.x];  // ties still to take at the tile start
  long long pos = out_off[blockIdx.x] + gpre +
                  (left <= 0 ? 0 : (left < epre ? left : static_cast<long long>(epre)));
  const int64_t base = blockIdx.x * kTile + int64_t{threadIdx.x} * kItems;
  for (int j = 0; j < kItems; j++) {
    const int64_t i = base + j;
    if (i >= n) break;
    const float m = Mag(v[i]);
    if (m > t || (m == t && rank++ < ties)) idx[pos++] = static_cast<int32_t>(i);
  }
}

}  // namespace

float KthLargestAbs(Context* ctx, const float* v, int64_t n, int64_t k) {
  cudaStream_t s = Stream(ctx);
  Scratch hist(ctx, 256 * sizeof(unsigned));
  std::vector<unsigned> h(256);
  uint32_t prefix = 0, mask = 0;
  int64_t rem = k;  // rank wanted among the entries that match the prefix so far
  for (int shift = 24; shift >= 0; shift -= 8) {
    MS_CUDA_CHECK(cudaMemsetAsync(hist.as<unsigned>(), 0, 256 * sizeof(unsigned), s));
    HistKernel<<<Blocks(n), kThreads, 0, s>>>(v, n, prefix, mask, shift, hist.as<unsigned>());
    MS_CUDA_LAUNCH_CHECK("HistKernel");
    MS_CUDA_CHECK(cudaMemcpyAsync(h.data(), hist.as<unsigned>(), 256 * sizeof(unsigned),
                                  cudaMemcpyDeviceToHost, s));
    MS_CUDA_CHECK(cudaStreamSynchronize(s));
    int d = 255;
    for (; d > 0; d--) {
      if (static_cast<int64_t>(h[d]) >= rem) break;
      rem -= h[d];
    }
    prefix |= static_cast<uint32_t>(d) << shift;
    mask |= 255u << shift;
  }
  float t;
  std::memcpy(&t, &prefix, sizeof t);
  return t;
}

int64_t SelectAbs(Context* ctx, const float* v, int64_t n, float t, int64_t limit,
                  int32_t* idx) {
  if (n == 0) return 0;
  cudaStream_t s = Stream(ctx);
  const int64_t tiles = (n + kTile - 1) / kTile;
  Scratch counts(ctx, 4 * tiles * sizeof(long long));
  long long* gt = counts.as<long long>();
  long long* eq = gt + tiles;
  long long* out_off = eq + tiles;
  long long* eq_off = out_off + tiles;
  CountKernel<<<static_cast<unsigned>(tiles), kSelThreads, 0, s>>>(v, n, t, gt, eq);
  MS_CUDA_LAUNCH_CHECK("CountKernel");
  std::vector<long long> h(4 * tiles);
  MS_CUDA_CHECK(cudaMemcpyAsync(h.data(), gt, 2 * tiles * sizeof(long long),
                                cudaMemcpyDeviceToHost, s));
  MS_CUDA_CHECK(cudaStreamSynchronize(s));
  long long above = 0;
  for (int64_t b = 0; b < tiles; b++) above += h[b];
  const long long ties = limit - above;  // <= 0: no ties at all
  long long out = 0, seen = 0;  // indices written / ties met before each tile
  for (int64_t b = 0; b < tiles; b++) {
    h[2 * tiles + b] = out;
    h[3 * tiles + b] = seen;
    const long long left = ties - seen;
    out += h[b] + (left <= 0 ? 0 : (left < h[tiles + b] ? left : h[tiles + b]));
    seen += h[tiles + b];
  }
  MS_CUDA_CHECK(cudaMemcpyAsync(out_off, h.data() + 2 * tiles, 2 * tiles * sizeof(long long),
                                cudaMemcpyHostToDevice, s));
  WriteKernel<<<static_cast<unsigned>(tiles), kSelThreads, 0, s>>>(v, n, t, ties, out_off,
                                                                   eq_off, idx);
  MS_CUDA_LAUNCH_CHECK("WriteKernel");
  MS_CUDA_CHECK(cudaStreamSynchronize(s));  // h is read by the copy above
  return out;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
