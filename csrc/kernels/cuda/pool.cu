// CUDA pooling kernels. Forward: one thread per output, scanning its window in the CPU's
// order (so ties and NaNs resolve alike). Backward: one thread per input cell gathering the
// windows that contain it, adding the same terms in the same order as the CPU's scatter:
// deterministic and without atomics. A max-pool index inside the plane but outside its own
// window (never produced by MaxPool2d) is added by a second, atomic pass, so that arbitrary
// indices keep the documented meaning (into a float16 dx: rounded once more per such index).
// float16: values loaded as float, every result computed in float32 and rounded once.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/util.cuh"
#include "kernels/pool.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::kThreads;

__device__ __forceinline__ int64_t Min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t Max64(int64_t a, int64_t b) { return a > b ? a : b; }

// The window of output (oh, ow) clipped to the image: rows [h0, h1), columns [w0, w1).
struct Window {
  int64_t h0, h1, w0, w1;
  __device__ Window(const ConvGeom& g, int64_t oh, int64_t ow) {
    h0 = oh * g.SH - g.PT;
    w0 = ow * g.SW - g.PL;
    h1 = Min64(h0 + g.KH, g.H);
    w1 = Min64(w0 + g.KW, g.W);
    h0 = Max64(h0, 0);
    w0 = Max64(w0, 0);
  }
  __device__ int64_t count() const {
    return Max64(h1 - h0, 0) * Max64(w1 - w0, 0);
  }
};

// 1 / the divisor of a window (0 for a window with no cell inside the image), as on the CPU.
__device__ __forceinline__ float InverseCount(const ConvGeom& g, const Window& win,
                                              bool count_include_pad) {
  const int64_t n = win.count();
  return n > 0 ? 1.f / static_cast<float>(count_include_pad ? g.KH * g.KW : n) : 0.f;
}

// The divisors of a launch's index arithmetic: FastDiv when every index fits 31 bits, else
// SlowDiv (a GPU has no integer divider: a 64-bit n / d is tens of instructions, and the
// backward kernels divided eight times per cell).
template <typename Dv>
struct PoolDivs {
  Dv P, OW, HW, W, SH, SW;  // outputs and cells per plane, their row lengths, the strides
};

// Runs f(I{}, PoolDivs<Dv>{...}, total as I): 32-bit indices when the elements and Covering's
// dividends (below H + PT + SH and W + PL + SW) fit.
template <typename F>
void WithDivs(const ConvGeom& g, int64_t total, F f) {
  const auto make = [&g](auto tag) {
    using Dv = decltype(tag);
    const auto d = [](int64_t v) { return Dv(std::max<int64_t>(v, 1)); };
    return PoolDivs<Dv>{d(g.OH * g.OW), d(g.OW), d(g.H * g.W), d(g.W), d(g.SH), d(g.SW)};
  };
  if (cudak::Fits31(total) && cudak::Fits31(g.OH * g.OW) && cudak::Fits31(g.H * g.W) &&
      cudak::Fits31(g.H + g.PT + g.SH) && cudak::Fits31(g.W + g.PL + g.SW))
    f(uint32_t{}, make(FastDiv{}), static_cast<uint32_t>(total));
  else
    f(int64_t{}, make(cudak::SlowDiv{}), total);
}

// Outputs along one axis whose window [o*S - P, o*S - P + K) contains position h: [*lo, *hi).
template <typename I, typename Dv>
__device__ __forceinline__ void Covering(I h, int64_t P, int64_t K, int64_t O, const Dv& S,
                                         int64_t* lo, int64_t* hi) {
  const int64_t a = static_cast<int64_t>(h) + P - K + 1;  // o*S >= a
  *lo = a <= 0 ? 0 : static_cast<int64_t>(S.Div(static_cast<I>(a + S.divisor() - 1)));
  *hi = Min64(static_cast<int64_t>(S.Div(static_cast<I>(h + P))) + 1, O);
}

// 64-bit indices with plain divisions: the 32-bit FastDiv version of this kernel measured
// slower on an H200 (3x3 stride 2 over (32, 64, 112, 112): 148 us against 121; the other
// pooling kernels gained 1.3-1.7x from it).
template <typename T>
__global__ void MaxPoolKernel(const T* x, int64_t planes, const ConvGeom g, T* y,
                              int32_t* idx) {
  const int64_t P = g.OH * g.OW;
  MS_CUDA_LOOP(e, planes * P) {
    const int64_t pl = e / P, oh = e % P / g.OW, ow = e % g.OW;
    const T* xp = x + pl * g.H * g.W;
    const Window win(g, oh, ow);
    float best = 0.f;
    int64_t arg = -1;
    for (int64_t h = win.h0; h < win.h1; h++) {
      for (int64_t w = win.w0; w < win.w1; w++) {
        const float v = cudak::DCvt<T>::Load(xp[h * g.W + w]);
        // The first maximum wins; the first NaN wins over numbers, as in numpy.
        if (arg < 0 || v > best || (cudak::IsNan(v) && !cudak::IsNan(best))) {
          best = v;
          arg = h * g.W + w;
        }
      }
    }
    y[e] = cudak::DCvt<T>::Store(best);
    idx[e] = static_cast<int32_t>(arg);
  }
}

template <typename I, typename Dv, typename T>
__global__ void AvgPoolKernel(const T* x, I total, const ConvGeom g, const PoolDivs<Dv> dv,
                              bool count_include_pad, T* y) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I pl = dv.P.Div(e), q = dv.P.Mod(e), oh = dv.OW.Div(q), ow = dv.OW.Mod(q);
    const T* xp = x + static_cast<int64_t>(pl) * g.H * g.W;
    const Window win(g, oh, ow);
    float sum = 0.f;
    for (int64_t h = win.h0; h < win.h1; h++)
      for (int64_t w = win.w0; w < win.w1; w++) sum += cudak::DCvt<T>::Load(xp[h * g.W + w]);
    y[e] = cudak::DCvt<T>::Store(sum * InverseCount(g, win, count_include_pad));
  }
}

template <typename I, typename Dv, typename T>
__global__ void MaxPoolBackwardKernel(const T* dy, const int32_t* idx, I total,
                                      const ConvGeom g, const PoolDivs<Dv> dv, T* dx) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I pl = dv.HW.Div(e), cell = dv.HW.Mod(e), h = dv.W.Div(cell), w = dv.W.Mod(cell);
    int64_t oh0, oh1, ow0, ow1;
    Covering(h, g.PT, g.KH, g.OH, dv.SH, &oh0, &oh1);
    Covering(w, g.PL, g.KW, g.OW, dv.SW, &ow0, &ow1);
    const int64_t base = static_cast<int64_t>(pl) * g.OH * g.OW;
    const T* gp = dy + base;
    const int32_t* ip = idx + base;
    float v = 0.f;
    for (int64_t oh = oh0; oh < oh1; oh++)
      for (int64_t ow = ow0; ow < ow1; ow++)
        if (ip[oh * g.OW + ow] == static_cast<int64_t>(cell))
          v += cudak::DCvt<T>::Load(gp[oh * g.OW + ow]);
    dx[e] = cudak::DCvt<T>::Store(v);
  }
}

// *p += v, atomically; a float16 cell is rounded once per addition.
__device__ __forceinline__ void AtomicAdd(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void AtomicAdd(half_t* p, float v) {
  unsigned short seen, old = p->bits;
  do {
    seen = old;
    const float sum = cudak::DCvt<half_t>::Load(half_t{seen}) + v;
    old = atomicCAS(&p->bits, seen, cudak::DCvt<half_t>::Store(sum).bits);
  } while (old != seen);
}

// Indices inside the plane but outside their own window: added atomically.
template <typename I, typename Dv, typename T>
__global__ void MaxPoolStrayKernel(const T* dy, const int32_t* idx, I total, const ConvGeom g,
                                   const PoolDivs<Dv> dv, T* dx) {
  const int64_t HW = g.H * g.W;
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t t = idx[e];
    if (t < 0 || t >= HW) continue;
    const I pl = dv.P.Div(e), q = dv.P.Mod(e), oh = dv.OW.Div(q), ow = dv.OW.Mod(q);
    const I h = dv.W.Div(static_cast<I>(t)), w = dv.W.Mod(static_cast<I>(t));
    const int64_t h0 = oh * g.SH - g.PT, w0 = ow * g.SW - g.PL;
    if (h >= h0 && h < h0 + g.KH && w >= w0 && w < w0 + g.KW) continue;  // gathered already
    AtomicAdd(dx + static_cast<int64_t>(pl) * HW + t, cudak::DCvt<T>::Load(dy[e]));
  }
}

template <typename I, typename Dv, typename T>
__global__ void AvgPoolBackwardKernel(const T* dy, I total, const ConvGeom g,
                                      const PoolDivs<Dv> dv, bool count_include_pad, T* dx) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I pl = dv.HW.Div(e), cell = dv.HW.Mod(e), h = dv.W.Div(cell), w = dv.W.Mod(cell);
    int64_t oh0, oh1, ow0, ow1;
    Covering(h, g.PT, g.KH, g.OH, dv.SH, &oh0, &oh1);
    Covering(w, g.PL, g.KW, g.OW, dv.SW, &ow0, &ow1);
    const T* gp = dy + static_cast<int64_t>(pl) * g.OH * g.OW;
    float v = 0.f;
    // The CPU adds by output row, then kernel column (so output column descending).
    for (int64_t oh = oh0; oh < oh1; oh++) {
      for (int64_t ow = ow1 - 1; ow >= ow0; ow--)
        v += cudak::DCvt<T>::Load(gp[oh * g.OW + ow]) *
             InverseCount(g, Window(g, oh, ow), count_include_pad);
    }
    dx[e] = cudak::DCvt<T>::Store(v);
  }
}

template <typename T>
void MaxPoolT(Context* ctx, const T* x, int64_t planes, const ConvGeom& g, T* y,
              int32_t* idx) {
  const int64_t total = planes * g.OH * g.OW;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MaxPoolKernel<<<cudak::Blocks(total), kThreads, 0, s>>>(x, planes, g, y, idx);
  MS_CUDA_LAUNCH_CHECK("MaxPoolKernel");
}

template <typename T>
void AvgPoolT(Context* ctx, const T* x, int64_t planes, const ConvGeom& g,
              bool count_include_pad, T* y) {
  const int64_t total = planes * g.OH * g.OW;
  if (total <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithDivs(g, total, [&](auto i, const auto& dv, auto n) {
    AvgPoolKernel<decltype(i)><<<cudak::Blocks(total), kThreads, 0, s>>>(
        x, n, g, dv, count_include_pad, y);
  });
  MS_CUDA_LAUNCH_CHECK("AvgPoolKernel");
}

template <typename T>
void MaxPoolBackwardT(Context* ctx, const T* dy, const int32_t* idx, int64_t planes,
                      const ConvGeom& g, T* dx) {
  const int64_t cells = planes * g.H * g.W, outs = planes * g.OH * g.OW;
  if (cells <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithDivs(g, std::max(cells, outs), [&](auto i, const auto& dv, auto) {
    using I = decltype(i);
    MaxPoolBackwardKernel<I><<<cudak::Blocks(cells), kThreads, 0, s>>>(
        dy, idx, static_cast<I>(cells), g, dv, dx);
    MS_CUDA_LAUNCH_CHECK("MaxPoolBackwardKernel");
    if (outs <= 0) return;
    MaxPoolStrayKernel<I><<<cudak::Blocks(outs), kThreads, 0, s>>>(
        dy, idx, static_cast<I>(outs), g, dv, dx);
    MS_CUDA_LAUNCH_CHECK("MaxPoolStrayKernel");
  });
}

template <typename T>
void AvgPoolBackwardT(Context* ctx, const T* dy, int64_t planes, const ConvGeom& g,
                      bool count_include_pad, T* dx) {
  const int64_t cells = planes * g.H * g.W;
  if (cells <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  WithDivs(g, cells, [&](auto i, const auto& dv, auto n) {
    AvgPoolBackwardKernel<decltype(i)><<<cudak::Blocks(cells), kThreads, 0, s>>>(
        dy, n, g, dv, count_include_pad, dx);
  });
  MS_CUDA_LAUNCH_CHECK("AvgPoolBackwardKernel");
}

}  // namespace

void MaxPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g, float* y,
               int32_t* idx) {
  MaxPoolT(ctx, x, planes, g, y, idx);
}
void MaxPool2d(Context* ctx, const half_t* x, int64_t planes, const ConvGeom& g, half_t* y,
               int32_t* idx) {
  MaxPoolT(ctx, x, planes, g, y, idx);
}

void AvgPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, float* y) {
  AvgPoolT(ctx, x, planes, g, count_include_pad, y);
}
void AvgPool2d(Context* ctx, const half_t* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, half_t* y) {
  AvgPoolT(ctx, x, planes, g, count_include_pad, y);
}

void MaxPool2dBackward(Context* ctx, const float* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, float* dx) {
  MaxPoolBackwardT(ctx, dy, idx, planes, g, dx);
}
void MaxPool2dBackward(Context* ctx, const half_t* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, half_t* dx) {
  MaxPoolBackwardT(ctx, dy, idx, planes, g, dx);
}

void AvgPool2dBackward(Context* ctx, const float* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, float* dx) {
  AvgPoolBackwardT(ctx, dy, planes, g, count_include_pad, dx);
}
void AvgPool2dBackward(Context* ctx, const half_t* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, half_t* dx) {
  AvgPoolBackwardT(ctx, dy, planes, g, count_include_pad, dx);
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
