// CUDA Winograd F(m x m, 3x3) transforms (kernels/winograd.h, where the per-tile work is): a
// thread per filter, input tile (channel, tile) or output tile (channel, tile). Consecutive
// threads take consecutive tiles, so each of the (m + 2)^2 planes of V and M is read or
// written in coalesced runs; indices are split by FastDiv (uint32_t) when they fit, else by
// SlowDiv. The kernels are templates on m (M).
#include <cstdint>

#include "kernels/cuda/util.cuh"
#include "kernels/winograd.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::kThreads;
using winograd::Planes;
using winograd::WithTile;

// A thread per column j of U: the writes to each plane are coalesced.
template <int M>
__global__ void FilterKernel(const float* w, int64_t K, int64_t C, bool flip, float* U) {
  constexpr int P = Planes(M);
  MS_CUDA_LOOP(j, K * C) {
    float u[P];
    winograd::FilterColumn<M>(w, K, C, flip, j, u);
#pragma unroll
    for (int xi = 0; xi < P; xi++) U[xi * K * C + j] = u[xi];
  }
}

// Splits a tile index t into image b, tile row th and tile column tw, and into slice and
// offset in the slice.
template <typename Dv>
struct TileDivs {
  Dv T, per, tw_n, Ts;  // tiles in all, per image, per tile row, per slice
};

// Offset of tile t of channel c (of `channels`) in a [S][P][channels][Ts] array, at xi 0
// (the next xi's is channels * Ts further on).
template <int P, typename I, typename Dv>
__device__ __forceinline__ int64_t SliceAt(I t, I c, int64_t channels, const TileDivs<Dv>& dv) {
  const int64_t Ts = dv.Ts.divisor();
  return (static_cast<int64_t>(dv.Ts.Div(t)) * P * channels + c) * Ts + dv.Ts.Mod(t);
}

template <int M, typename I, typename Dv>
__global__ void InputKernel(const float* x, const ConvGeom g, I total, const TileDivs<Dv> dv,
                            float* V) {
  constexpr int P = Planes(M);
  const int64_t plane = g.C * static_cast<int64_t>(dv.Ts.divisor());
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I c = dv.T.Div(e), t = dv.T.Mod(e);
    const I b = dv.per.Div(t), r = dv.per.Mod(t);
    const I th = dv.tw_n.Div(r), tw = dv.tw_n.Mod(r);
    const float* img = x + (static_cast<int64_t>(b) * g.C + c) * g.H * g.W;
    float d[P], v[P];
    winograd::LoadWindow<M, M + 2>(img, g.H, g.W, g.PT, g.PL, th, tw, d);
    winograd::Tile<M>::Input(d, v);
    float* out = V + SliceAt<P>(t, c, g.C, dv);
#pragma unroll
    for (int xi = 0; xi < P; xi++) out[xi * plane] = v[xi];
  }
}

template <int M, typename I, typename Dv>
__global__ void OutputAdjointKernel(const float* dy, const ConvGeom g, int64_t K, I total,
                                    const TileDivs<Dv> dv, float* Z) {
  constexpr int P = Planes(M);
  const int64_t plane = K * static_cast<int64_t>(dv.Ts.divisor());
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I k = dv.T.Div(e), t = dv.T.Mod(e);
    const I b = dv.per.Div(t), r = dv.per.Mod(t);
    const I th = dv.tw_n.Div(r), tw = dv.tw_n.Mod(r);
    const float* img = dy + (static_cast<int64_t>(b) * K + k) * g.OH * g.OW;
    float d[M * M], z[P];
    winograd::LoadWindow<M, M>(img, g.OH, g.OW, 0, 0, th, tw, d);
    winograd::Tile<M>::OutputAdjoint(d, z);
    float* out = Z + SliceAt<P>(t, k, K, dv);
#pragma unroll
    for (int xi = 0; xi < P; xi++) out[xi * plane] = z[xi];
  }
}

// A thread per filter kc, summing its partial sums in order of p (coalesced reads).
template <int M>
__global__ void FilterAdjointKernel(const float* P, int64_t parts, int64_t K, int64_t C,
                                    float* dw) {
  constexpr int NP = Planes(M);
  const int64_t KC = K * C;
  MS_CUDA_LOOP(kc, KC) {
    float u[NP];
#pragma unroll
    for (int xi = 0; xi < NP; xi++) u[xi] = 0.f;
    for (int64_t p = 0; p < parts; p++)
#pragma unroll
      for (int xi = 0; xi < NP; xi++) u[xi] += P[(p * NP + xi) * KC + kc];
    winograd::FilterAdjointColumn<M>(u, kc, dw);
  }
}

template <int M, typename I, typename Dv>
__global__ void OutputKernel(const float* Mt, const float* bias, const ConvGeom g, int64_t K,
                             I total, const TileDivs<Dv> dv, float* y) {
  constexpr int P = Planes(M);
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I k = dv.T.Div(e), t = dv.T.Mod(e);
    const I b = dv.per.Div(t), r = dv.per.Mod(t);
    const I th = dv.tw_n.Div(r), tw = dv.tw_n.Mod(r);
    float m[P], o[M * M];
#pragma unroll
    for (int xi = 0; xi < P; xi++) m[xi] = Mt[xi * static_cast<int64_t>(total) + e];
    winograd::Tile<M>::Output(m, o);
    float* out = y + (static_cast<int64_t>(b) * K + k) * g.OH * g.OW;
    winograd::StoreOutputTile<M>(o, bias ? bias + k : nullptr, g, th, tw, out);
  }
}

// Runs f(I{}, dividers, total) for `channels` x the m x m tiles of `batch` images of g's
// output, the tiles in `slices` slices.
template <typename F>
void WithTiles(int m, int64_t channels, int64_t batch, const ConvGeom& g, int64_t slices, F f) {
  const int64_t tw_n = winograd::Tiles(g.OW, m), per = winograd::Tiles(g.OH, m) * tw_n;
  const int64_t T = batch * per;
  const int64_t total = channels * T, Ts = T / slices;
  if (cudak::Fits31(total))
    f(uint32_t{}, TileDivs<FastDiv>{FastDiv(T), FastDiv(per), FastDiv(tw_n), FastDiv(Ts)},
      static_cast<uint32_t>(total));
  else
    f(int64_t{}, TileDivs<cudak::SlowDiv>{cudak::SlowDiv(T), cudak::SlowDiv(per),
                                          cudak::SlowDiv(tw_n), cudak::SlowDiv(Ts)},
      total);
}

}  // namespace

void WinogradFilter(Context* ctx, int m, const float* w, int64_t K, int64_t C, bool flip,
                    float* U) {
  if (K * C <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value;
    FilterKernel<M><<<cudak::Blocks(K * C), kThreads, 0, s>>>(w, K, C, flip, U);
  });
  MS_CUDA_LAUNCH_CHECK("WinogradFilter");
}

void WinogradInput(Context* ctx, int m, const float* x, int64_t batch, const ConvGeom& g,
                   int64_t slices, float* V) {
  if (batch <= 0 || g.C <= 0 || g.OH <= 0 || g.OW <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value;
    WithTiles(M, g.C, batch, g, slices, [&](auto i, auto dv, auto total) {
      using I = decltype(i);
      InputKernel<M, I><<<cudak::Blocks(total), kThreads, 0, s>>>(x, g, total, dv, V);
    });
  });
  MS_CUDA_LAUNCH_CHECK("WinogradInput");
}

void WinogradOutput(Context* ctx, int m, const float* M, const float* bias, int64_t batch,
                    const ConvGeom& g, int64_t K, float* y) {
  if (batch <= 0 || K <= 0 || g.OH <= 0 || g.OW <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTile(m, [&](auto tile) {
    constexpr int TM = decltype(tile)::value;
    WithTiles(TM, K, batch, g, 1, [&](auto i, auto dv, auto total) {
      using I = decltype(i);
      OutputKernel<TM, I><<<cudak::Blocks(total), kThreads, 0, s>>>(M, bias, g, K, total, dv, y);
    });
  });
  MS_CUDA_LAUNCH_CHECK("WinogradOutput");
}

void WinogradOutputAdjoint(Context* ctx, int m, const float* dy, int64_t batch,
                           const ConvGeom& g, int64_t K, int64_t slices, float* Z) {
  if (batch <= 0 || K <= 0 || g.OH <= 0 || g.OW <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value;
    WithTiles(M, K, batch, g, slices, [&](auto i, auto dv, auto total) {
      using I = decltype(i);
      OutputAdjointKernel<M, I><<<cudak::Blocks(total), kThreads, 0, s>>>(dy, g, K, total, dv, Z);
    });
  });
  MS_CUDA_LAUNCH_CHECK("WinogradOutputAdjoint");
}

void WinogradFilterAdjoint(Context* ctx, int m, const float* P, int64_t parts, int64_t K,
                           int64_t C, float* dw) {
  if (K * C <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value;
    FilterAdjointKernel<M><<<cudak::Blocks(K * C), kThreads, 0, s>>>(P, parts, K, C, dw);
  });
  MS_CUDA_LAUNCH_CHECK("WinogradFilterAdjoint");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
