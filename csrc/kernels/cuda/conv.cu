// CUDA convolution kernels: im2col (one thread per col entry), col2im as a gather (one thread
// per input cell, summing its window entries in the CPU's (kh, kw) order, so no atomics and
// the same rounding), the [C, B, HW] <-> NCHW layout passes (indices split by FastDiv), a
// deterministic per-channel bias gradient (block tree, double accumulation); depthwise
// convolution computed directly (one thread per output / input cell, a block per weight).
#include <climits>
#include <cstdint>

#include "kernels/conv.h"
#include "kernels/cuda/util.cuh"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::kThreads;

// The index kernels below decompose flat indices with FastDiv (uint32_t indices) when every
// index fits 31 bits, else with SlowDiv (int64_t): both are Dv, I the matching index type.

template <typename Dv>
struct Im2ColDivs {
  Dv ld, cols_img, OW, KK, KW;  // col entry e = r * ld + b * cols_img + i * OW + ow
};

template <typename I, typename Dv, typename T>
__global__ void Im2ColKernel(const T* x, const ConvGeom g, int64_t row0, I total,
                             const Im2ColDivs<Dv> dv, T* col) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I r = dv.ld.Div(e), cidx = dv.ld.Mod(e);
    const I b = dv.cols_img.Div(cidx), rem = dv.cols_img.Mod(cidx);
    const I i = dv.OW.Div(rem), ow = dv.OW.Mod(rem);
    const I c = dv.KK.Div(r), k = dv.KK.Mod(r);
    const I kh = dv.KW.Div(k), kw = dv.KW.Mod(k);
    const int64_t ih = (row0 + i) * g.SH - g.PT + kh * g.DH;
    const int64_t iw = ow * g.SW - g.PL + kw * g.DW;
    col[e] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                 ? x[((static_cast<int64_t>(b) * g.C + c) * g.H + ih) * g.W + iw]
                 : T{};
  }
}

template <typename Dv>
struct Col2ImDivs {
  Dv W, nh, C, SH, SW;  // cell e = ((b * C + c) * nh + ih - ih0) * W + iw; the strides
};

// Cells of input rows [ih0, ih0 + nh): x (+)= the col entries that im2col read from them.
template <typename I, typename Dv, typename T>
__global__ void Col2ImKernel(const float* col, const ConvGeom g, int64_t row0, int64_t rows,
                             int64_t batch, int64_t ih0, I total, const Col2ImDivs<Dv> dv,
                             bool accumulate, T* x) {
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I iw = dv.W.Mod(e), t = dv.W.Div(e);
    const int64_t ih = ih0 + dv.nh.Mod(t);
    const I bc = dv.nh.Div(t);  // b * C + c
    const int64_t b = dv.C.Div(bc), c = dv.C.Mod(bc);
    T* cell = x + (static_cast<int64_t>(bc) * g.H + ih) * g.W + iw;
    float v = accumulate ? cudak::DCvt<T>::Load(*cell) : 0.f;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      const int64_t hh = ih + g.PT - kh * g.DH;  // = oh * SH
      if (hh < 0) continue;
      const int64_t oh = dv.SH.Div(static_cast<I>(hh));
      if (oh * g.SH != hh || oh < row0 || oh >= row0 + rows || oh >= g.OH) continue;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        const int64_t ww = iw + g.PL - kw * g.DW;  // = ow * SW
        if (ww < 0) continue;
        const int64_t ow = dv.SW.Div(static_cast<I>(ww));
        if (ow * g.SW != ww || ow >= g.OW) continue;
        v += col[((c * g.KH + kh) * g.KW + kw) * ld + b * cols_img + (oh - row0) * g.OW + ow];
      }
    }
    *cell = cudak::DCvt<T>::Store(v);
  }
}

// dst[b][c][i] = src[c][b][i] (+ bias[c]); e = (b * channels + c) * hw + i.
template <typename I, typename Dv, typename S, typename T>
__global__ void ScatterKernel(const S* src, const T* bias, I total, I batch, const Dv hw,
                              const Dv channels, T* dst) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I i = hw.Mod(e), bc = hw.Div(e);
    const I b = channels.Div(bc), c = channels.Mod(bc);
    const float v = cudak::DCvt<S>::Load(src[(c * batch + b) * static_cast<I>(hw.divisor()) + i]);
    dst[e] = cudak::DCvt<T>::Store(v + (bias ? cudak::DCvt<T>::Load(bias[c]) : 0.f));
  }
}

// dst[c][b][i] = src[b][c][i]; e = (c * batch + b) * hw + i.
template <typename I, typename Dv, typename T>
__global__ void GatherKernel(const T* src, I total, I channels, const Dv hw, const Dv batch,
                             T* dst) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I i = hw.Mod(e), cb = hw.Div(e);
    const I c = batch.Div(cb), b = batch.Mod(cb);
    dst[e] = src[(b * channels + c) * static_cast<I>(hw.divisor()) + i];
  }
}

template <typename T>
__global__ void BiasGradKernel(const T* dy, int64_t batch, int64_t channels, int64_t hw,
                               T* db) {
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double acc = 0;
    for (int64_t b = 0; b < batch; b++) {
      const T* s = dy + (b * channels + c) * hw;
      for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) acc += cudak::DCvt<T>::Load(s[i]);
    }
    acc = cudak::BlockAllReduce(acc, [](double a, double v) { return a + v; });
    if (threadIdx.x == 0) db[c] = cudak::DCvt<T>::Store(static_cast<float>(acc));
  }
}

// One thread per output (n, co, oh, ow): bias, then the window in the CPU's (kh, kw) order.
__global__ void DepthwiseKernel(const float* x, const float* w, const float* bias,
                                int64_t batch, const ConvGeom g, int64_t multiplier, float* y) {
  const int64_t Cout = g.C * multiplier, P = g.OH * g.OW;
  MS_CUDA_LOOP(e, batch * Cout * P) {
    const int64_t p = e % P, nco = e / P, co = nco % Cout, n = nco / Cout;
    const int64_t oh = p / g.OW, ow = p % g.OW;
    const float* plane = x + (n * g.C + co / multiplier) * g.H * g.W;
    const float* wk = w + co * g.KH * g.KW;
    float acc = bias ? bias[co] : 0.f;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        const int64_t iw = ow * g.SW - g.PL + kw * g.DW;
        if (iw >= 0 && iw < g.W) acc += wk[kh * g.KW + kw] * plane[ih * g.W + iw];
      }
    }
    y[e] = acc;
  }
}

// One thread per input cell (n, c, ih, iw): the outputs that read it, in the CPU's order
// (multiplier j, then output row ascending, i.e. kh descending, then kw).
__global__ void DepthwiseDataKernel(const float* dy, const float* w, int64_t batch,
                                    const ConvGeom g, int64_t multiplier, float* dx) {
  const int64_t Cout = g.C * multiplier, P = g.OH * g.OW, HW = g.H * g.W;
  MS_CUDA_LOOP(e, batch * g.C * HW) {
    const int64_t cell = e % HW, nc = e / HW, c = nc % g.C, n = nc / g.C;
    const int64_t ih = cell / g.W, iw = cell % g.W;
    float v = 0.f;
    for (int64_t j = 0; j < multiplier; j++) {
      const int64_t co = c * multiplier + j;
      const float* grad = dy + (n * Cout + co) * P;
      const float* wk = w + co * g.KH * g.KW;
      for (int64_t kh = g.KH - 1; kh >= 0; kh--) {
        const int64_t hh = ih + g.PT - kh * g.DH;  // = oh * SH
        if (hh < 0 || hh % g.SH != 0 || hh / g.SH >= g.OH) continue;
        const int64_t oh = hh / g.SH;
        for (int64_t kw = 0; kw < g.KW; kw++) {
          const int64_t ww = iw + g.PL - kw * g.DW;  // = ow * SW
          if (ww < 0 || ww % g.SW != 0 || ww / g.SW >= g.OW) continue;
          v += wk[kh * g.KW + kw] * grad[oh * g.OW + ww / g.SW];
        }
      }
    }
    dx[e] = v;
  }
}

// Block (co, kh, kw): dw = sum over n, oh, ow of dy * x (double, block tree).
__global__ void DepthwiseWeightKernel(const float* dy, const float* x, int64_t batch,
                                      const ConvGeom g, int64_t multiplier, float* dw) {
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, P = g.OH * g.OW;
  for (int64_t b = blockIdx.x; b < Cout * KK; b += gridDim.x) {
    const int64_t co = b / KK, kh = b % KK / g.KW, kw = b % g.KW, c = co / multiplier;
    double acc = 0;
    for (int64_t e = threadIdx.x; e < batch * P; e += blockDim.x) {
      const int64_t n = e / P, p = e % P, oh = p / g.OW, ow = p % g.OW;
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH, iw = ow * g.SW - g.PL + kw * g.DW;
      if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
        acc += dy[(n * Cout + co) * P + p] * x[((n * g.C + c) * g.H + ih) * g.W + iw];
    }
    acc = cudak::BlockAllReduce(acc, [](double a, double v) { return a + v; });
    if (threadIdx.x == 0) dw[b] = static_cast<float>(acc);
  }
}


template <typename T>
void Im2ColT(Context* ctx, const T* x, int64_t batch, const ConvGeom& g, int64_t row0,
             int64_t rows, T* col) {
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const int64_t total = g.C * g.KH * g.KW * ld;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  const int64_t KK = g.KH * g.KW;
  if (cudak::Fits31(total)) {
    const Im2ColDivs<FastDiv> dv{FastDiv(ld), FastDiv(cols_img), FastDiv(g.OW), FastDiv(KK),
                                 FastDiv(g.KW)};
    Im2ColKernel<uint32_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        x, g, row0, static_cast<uint32_t>(total), dv, col);
  } else {
    const Im2ColDivs<cudak::SlowDiv> dv{cudak::SlowDiv(ld), cudak::SlowDiv(cols_img),
                                        cudak::SlowDiv(g.OW), cudak::SlowDiv(KK),
                                        cudak::SlowDiv(g.KW)};
    Im2ColKernel<int64_t><<<cudak::Blocks(total), kThreads, 0, s>>>(x, g, row0, total, dv, col);
  }
  MS_CUDA_LAUNCH_CHECK("Im2ColKernel");
}

template <typename T>
void Col2ImT(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
             int64_t rows, bool accumulate, T* x) {
  if (batch <= 0 || rows <= 0) return;
  // Input rows the band's windows reach (every row when the images are written whole).
  const int64_t lo = accumulate ? std::max<int64_t>(0, row0 * g.SH - g.PT) : 0;
  const int64_t last = (row0 + rows - 1) * g.SH - g.PT + (g.KH - 1) * g.DH;
  const int64_t hi = accumulate ? std::min<int64_t>(g.H, last + 1) : g.H;
  if (hi <= lo) return;
  cudaStream_t s = cudak::Stream(ctx);
  const int64_t nh = hi - lo, total = batch * g.C * nh * g.W;
  // hh and ww (the dividends by the strides) are below H + PT and W + PL.
  if (cudak::Fits31(total) && cudak::Fits31(g.H + g.PT) && cudak::Fits31(g.W + g.PL)) {
    const Col2ImDivs<FastDiv> dv{FastDiv(g.W), FastDiv(nh), FastDiv(g.C), FastDiv(g.SH),
                                 FastDiv(g.SW)};
    Col2ImKernel<uint32_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        col, g, row0, rows, batch, lo, static_cast<uint32_t>(total), dv, accumulate, x);
  } else {
    const Col2ImDivs<cudak::SlowDiv> dv{cudak::SlowDiv(g.W), cudak::SlowDiv(nh),
                                        cudak::SlowDiv(g.C), cudak::SlowDiv(g.SH),
                                        cudak::SlowDiv(g.SW)};
    Col2ImKernel<int64_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        col, g, row0, rows, batch, lo, total, dv, accumulate, x);
  }
  MS_CUDA_LAUNCH_CHECK("Col2ImKernel");
}

template <typename S, typename T>
void ScatterT(Context* ctx, const S* src, const T* bias, int64_t batch, int64_t channels,
              int64_t hw, T* dst) {
  const int64_t total = batch * channels * hw;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  if (cudak::Fits31(total))
    ScatterKernel<uint32_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        src, bias, static_cast<uint32_t>(total), static_cast<uint32_t>(batch), FastDiv(hw),
        FastDiv(channels), dst);
  else
    ScatterKernel<int64_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        src, bias, total, batch, cudak::SlowDiv(hw), cudak::SlowDiv(channels), dst);
  MS_CUDA_LAUNCH_CHECK("ScatterKernel");
}

template <typename T>
void GatherT(Context* ctx, const T* src, int64_t batch, int64_t channels, int64_t hw, T* dst) {
  const int64_t total = batch * channels * hw;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  if (cudak::Fits31(total))
    GatherKernel<uint32_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        src, static_cast<uint32_t>(total), static_cast<uint32_t>(channels), FastDiv(hw),
        FastDiv(batch), dst);
  else
    GatherKernel<int64_t><<<cudak::Blocks(total), kThreads, 0, s>>>(
        src, total, channels, cudak::SlowDiv(hw), cudak::SlowDiv(batch), dst);
  MS_CUDA_LAUNCH_CHECK("GatherKernel");
}

template <typename T>
void BiasGradT(Context* ctx, const T* dy, int64_t batch, int64_t channels, int64_t hw, T* db) {
  if (channels <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(channels, cudak::kMaxBlocks));
  BiasGradKernel<<<grid, kThreads, 0, s>>>(dy, batch, channels, hw, db);
  MS_CUDA_LAUNCH_CHECK("BiasGradKernel");
}

}  // namespace

void Im2Col(Context* ctx, const float* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* col) {
  Im2ColT(ctx, x, batch, g, row0, rows, col);
}
void Im2Col(Context* ctx, const half_t* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, half_t* col) {
  Im2ColT(ctx, x, batch, g, row0, rows, col);
}

void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, bool accumulate, float* x) {
  Col2ImT(ctx, col, batch, g, row0, rows, accumulate, x);
}
void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, bool accumulate, half_t* x) {
  Col2ImT(ctx, col, batch, g, row0, rows, accumulate, x);
}

void ConvScatter(Context* ctx, const float* src, const float* bias, int64_t batch,
                 int64_t channels, int64_t hw, float* dst) {
  ScatterT(ctx, src, bias, batch, channels, hw, dst);
}
void ConvScatter(Context* ctx, const float* src, const half_t* bias, int64_t batch,
                 int64_t channels, int64_t hw, half_t* dst) {
  ScatterT(ctx, src, bias, batch, channels, hw, dst);
}
void ConvScatter(Context* ctx, const half_t* src, const half_t* bias, int64_t batch,
                 int64_t channels, int64_t hw, half_t* dst) {
  ScatterT(ctx, src, bias, batch, channels, hw, dst);
}

void ConvGather(Context* ctx, const float* src, int64_t batch, int64_t channels, int64_t hw,
                float* dst) {
  GatherT(ctx, src, batch, channels, hw, dst);
}
void ConvGather(Context* ctx, const half_t* src, int64_t batch, int64_t channels, int64_t hw,
                half_t* dst) {
  GatherT(ctx, src, batch, channels, hw, dst);
}

void ConvBiasGrad(Context* ctx, const float* dy, int64_t batch, int64_t channels, int64_t hw,
                  float* db) {
  BiasGradT(ctx, dy, batch, channels, hw, db);
}
void ConvBiasGrad(Context* ctx, const half_t* dy, int64_t batch, int64_t channels, int64_t hw,
                  half_t* db) {
  BiasGradT(ctx, dy, batch, channels, hw, db);
}

void DepthwiseConv2d(Context* ctx, const float* x, const float* w, const float* bias,
                     int64_t batch, const ConvGeom& g, int64_t multiplier, float* y) {
  const int64_t total = batch * g.C * multiplier * g.OH * g.OW;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  DepthwiseKernel<<<cudak::Blocks(total), kThreads, 0, s>>>(x, w, bias, batch, g, multiplier, y);
  MS_CUDA_LAUNCH_CHECK("DepthwiseKernel");
}

void DepthwiseConv2dBackwardData(Context* ctx, const float* dy, const float* w, int64_t batch,
                                 const ConvGeom& g, int64_t multiplier, float* dx) {
  const int64_t total = batch * g.C * g.H * g.W;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  DepthwiseDataKernel<<<cudak::Blocks(total), kThreads, 0, s>>>(dy, w, batch, g, multiplier, dx);
  MS_CUDA_LAUNCH_CHECK("DepthwiseDataKernel");
}

void DepthwiseConv2dBackwardWeight(Context* ctx, const float* dy, const float* x,
                                   int64_t batch, const ConvGeom& g, int64_t multiplier,
                                   float* dw) {
  const int64_t outs = g.C * multiplier * g.KH * g.KW;
  if (outs <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(outs, 65535));
  DepthwiseWeightKernel<<<grid, kThreads, 0, s>>>(dy, x, batch, g, multiplier, dw);
  MS_CUDA_LAUNCH_CHECK("DepthwiseWeightKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
