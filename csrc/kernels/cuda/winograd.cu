// CUDA Winograd F(2x2, 3x3) transforms (kernels/winograd.h): a thread per filter, input tile
// (channel, tile) or output tile (channel, tile), the arithmetic in winograd.h. Consecutive
// threads take consecutive tiles, so each of the 16 planes of V and M is read or written in
// coalesced runs; indices are split by FastDiv (uint32_t) when they fit, else by SlowDiv.
#include <cstdint>

#include "kernels/cuda/util.cuh"
#include "kernels/winograd.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::kThreads;

__global__ void FilterKernel(const float* w, int64_t K, int64_t C, bool flip, float* U) {
  const int64_t KC = K * C;
  MS_CUDA_LOOP(kc, KC) {
    const float* f = w + kc * 9;
    float g[9], u[16];
    for (int i = 0; i < 9; i++) g[i] = f[flip ? 8 - i : i];
    winograd::FilterTile(g, u);
    const int64_t k = kc / C, c = kc % C, at = flip ? c * K + k : kc;
    for (int xi = 0; xi < 16; xi++) U[xi * KC + at] = u[xi];
  }
}

// Splits a tile index t into image b, tile row th and tile column tw.
template <typename Dv>
struct TileDivs {
  Dv T, per, tw_n;  // tiles in all, per image, per tile row
};

template <typename I, typename Dv>
__global__ void InputKernel(const float* x, const ConvGeom g, I total, const TileDivs<Dv> dv,
                            float* V) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I c = dv.T.Div(e), t = dv.T.Mod(e);
    const I b = dv.per.Div(t), r = dv.per.Mod(t);
    const I th = dv.tw_n.Div(r), tw = dv.tw_n.Mod(r);
    const float* img = x + (static_cast<int64_t>(b) * g.C + c) * g.H * g.W;
    const int64_t ih0 = 2 * static_cast<int64_t>(th) - g.PT;
    const int64_t iw0 = 2 * static_cast<int64_t>(tw) - g.PL;
    float d[16], v[16];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int64_t ih = ih0 + i;
      const bool row_in = ih >= 0 && ih < g.H;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int64_t iw = iw0 + j;
        d[4 * i + j] = row_in && iw >= 0 && iw < g.W ? img[ih * g.W + iw] : 0.f;
      }
    }
    winograd::InputTile(d, v);
#pragma unroll
    for (int xi = 0; xi < 16; xi++) V[xi * static_cast<int64_t>(total) + e] = v[xi];
  }
}

template <typename I, typename Dv>
__global__ void OutputKernel(const float* M, const float* bias, const ConvGeom g, int64_t K,
                             I total, const TileDivs<Dv> dv, float* y) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I k = dv.T.Div(e), t = dv.T.Mod(e);
    const I b = dv.per.Div(t), r = dv.per.Mod(t);
    const I th = dv.tw_n.Div(r), tw = dv.tw_n.Mod(r);
    float m[16], o[4];
#pragma unroll
    for (int xi = 0; xi < 16; xi++) m[xi] = M[xi * static_cast<int64_t>(total) + e];
    winograd::OutputTile(m, o);
    float* out = y + (static_cast<int64_t>(b) * K + k) * g.OH * g.OW;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 2; j++) {
        const int64_t oh = 2 * static_cast<int64_t>(th) + i, ow = 2 * static_cast<int64_t>(tw) + j;
        if (oh < g.OH && ow < g.OW) out[oh * g.OW + ow] = bias ? o[2 * i + j] + bias[k] : o[2 * i + j];
      }
  }
}

// Runs f(I{}, dividers, total) for `channels` x the tiles of `batch` images of g's output.
template <typename F>
void WithTiles(int64_t channels, int64_t batch, const ConvGeom& g, F f) {
  const int64_t tw_n = (g.OW + 1) / 2, per = (g.OH + 1) / 2 * tw_n, T = batch * per;
  const int64_t total = channels * T;
  if (cudak::Fits31(total))
    f(uint32_t{}, TileDivs<FastDiv>{FastDiv(T), FastDiv(per), FastDiv(tw_n)},
      static_cast<uint32_t>(total));
  else
    f(int64_t{}, TileDivs<cudak::SlowDiv>{cudak::SlowDiv(T), cudak::SlowDiv(per),
                                          cudak::SlowDiv(tw_n)},
      total);
}

}  // namespace

void WinogradFilter(Context* ctx, const float* w, int64_t K, int64_t C, bool flip, float* U) {
  if (K * C <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FilterKernel<<<cudak::Blocks(K * C), kThreads, 0, s>>>(w, K, C, flip, U);
  MS_CUDA_LAUNCH_CHECK("WinogradFilter");
}

void WinogradInput(Context* ctx, const float* x, int64_t batch, const ConvGeom& g, float* V) {
  if (batch <= 0 || g.C <= 0 || g.OH <= 0 || g.OW <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTiles(g.C, batch, g, [&](auto i, auto dv, auto total) {
    using I = decltype(i);
    InputKernel<I><<<cudak::Blocks(total), kThreads, 0, s>>>(x, g, total, dv, V);
  });
  MS_CUDA_LAUNCH_CHECK("WinogradInput");
}

void WinogradOutput(Context* ctx, const float* M, const float* bias, int64_t batch,
                    const ConvGeom& g, int64_t K, float* y) {
  if (batch <= 0 || K <= 0 || g.OH <= 0 || g.OW <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithTiles(K, batch, g, [&](auto i, auto dv, auto total) {
    using I = decltype(i);
    OutputKernel<I><<<cudak::Blocks(total), kThreads, 0, s>>>(M, bias, g, K, total, dv, y);
  });
  MS_CUDA_LAUNCH_CHECK("WinogradOutput");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
