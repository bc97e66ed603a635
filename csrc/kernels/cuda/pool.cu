// CUDA pooling kernels. Forward: one thread per output, scanning its window in the CPU's
// order (so ties and NaNs resolve alike). Backward: one thread per input cell gathering the
// windows that contain it, adding the same terms in the same order as the CPU's scatter:
// deterministic and without atomics. A max-pool index inside the plane but outside its own
// window (never produced by MaxPool2d) is added by a second, atomic pass, so that arbitrary
// indices keep the documented meaning (into a float16 dx: rounded once more per such index).
// float16: values loaded as float, every result computed in float32 and rounded once.
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

// Outputs along one axis whose window [o*S - P, o*S - P + K) contains position h: [*lo, *hi).
__device__ __forceinline__ void Covering(int64_t h, int64_t S, int64_t P, int64_t K,
                                         int64_t O, int64_t* lo, int64_t* hi) {
  const int64_t a = h + P - K + 1;  // o*S >= a
  *lo = a <= 0 ? 0 : (a + S - 1) / S;
  *hi = Min64((h + P) / S + 1, O);
}

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

template <typename T>
__global__ void AvgPoolKernel(const T* x, int64_t planes, const ConvGeom g,
                              bool count_include_pad, T* y) {
  const int64_t P = g.OH * g.OW;
  MS_CUDA_LOOP(e, planes * P) {
    const int64_t pl = e / P, oh = e % P / g.OW, ow = e % g.OW;
    const T* xp = x + pl * g.H * g.W;
    const Window win(g, oh, ow);
    float sum = 0.f;
    for (int64_t h = win.h0; h < win.h1; h++)
      for (int64_t w = win.w0; w < win.w1; w++) sum += cudak::DCvt<T>::Load(xp[h * g.W + w]);
    y[e] = cudak::DCvt<T>::Store(sum * InverseCount(g, win, count_include_pad));
  }
}

template <typename T>
__global__ void MaxPoolBackwardKernel(const T* dy, const int32_t* idx, int64_t planes,
                                      const ConvGeom g, T* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  MS_CUDA_LOOP(e, planes * HW) {
    const int64_t pl = e / HW, cell = e % HW, h = cell / g.W, w = cell % g.W;
    int64_t oh0, oh1, ow0, ow1;
    Covering(h, g.SH, g.PT, g.KH, g.OH, &oh0, &oh1);
    Covering(w, g.SW, g.PL, g.KW, g.OW, &ow0, &ow1);
    const T* gp = dy + pl * P;
    const int32_t* ip = idx + pl * P;
    float v = 0.f;
    for (int64_t oh = oh0; oh < oh1; oh++)
      for (int64_t ow = ow0; ow < ow1; ow++)
        if (ip[oh * g.OW + ow] == cell) v += cudak::DCvt<T>::Load(gp[oh * g.OW + ow]);
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
template <typename T>
__global__ void MaxPoolStrayKernel(const T* dy, const int32_t* idx, int64_t planes,
                                   const ConvGeom g, T* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  MS_CUDA_LOOP(e, planes * P) {
    const int64_t t = idx[e];
    if (t < 0 || t >= HW) continue;
    const int64_t oh = e % P / g.OW, ow = e % g.OW;
    const int64_t h = t / g.W, w = t % g.W;
    const int64_t h0 = oh * g.SH - g.PT, w0 = ow * g.SW - g.PL;
    if (h >= h0 && h < h0 + g.KH && w >= w0 && w < w0 + g.KW) continue;  // gathered already
    AtomicAdd(dx + e / P * HW + t, cudak::DCvt<T>::Load(dy[e]));
  }
}

template <typename T>
__global__ void AvgPoolBackwardKernel(const T* dy, int64_t planes, const ConvGeom g,
                                      bool count_include_pad, T* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  MS_CUDA_LOOP(e, planes * HW) {
    const int64_t pl = e / HW, h = e % HW / g.W, w = e % g.W;
    int64_t oh0, oh1, ow0, ow1;
    Covering(h, g.SH, g.PT, g.KH, g.OH, &oh0, &oh1);
    Covering(w, g.SW, g.PL, g.KW, g.OW, &ow0, &ow1);
    const T* gp = dy + pl * P;
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
  AvgPoolKernel<<<cudak::Blocks(total), kThreads, 0, s>>>(x, planes, g, count_include_pad, y);
  MS_CUDA_LAUNCH_CHECK("AvgPoolKernel");
}

template <typename T>
void MaxPoolBackwardT(Context* ctx, const T* dy, const int32_t* idx, int64_t planes,
                      const ConvGeom& g, T* dx) {
  const int64_t cells = planes * g.H * g.W, outs = planes * g.OH * g.OW;
  if (cells <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MaxPoolBackwardKernel<<<cudak::Blocks(cells), kThreads, 0, s>>>(dy, idx, planes, g, dx);
  MS_CUDA_LAUNCH_CHECK("MaxPoolBackwardKernel");
  if (outs <= 0) return;
  MaxPoolStrayKernel<<<cudak::Blocks(outs), kThreads, 0, s>>>(dy, idx, planes, g, dx);
  MS_CUDA_LAUNCH_CHECK("MaxPoolStrayKernel");
}

template <typename T>
void AvgPoolBackwardT(Context* ctx, const T* dy, int64_t planes, const ConvGeom& g,
                      bool count_include_pad, T* dx) {
  const int64_t cells = planes * g.H * g.W;
  if (cells <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  AvgPoolBackwardKernel<<<cudak::Blocks(cells), kThreads, 0, s>>>(dy, planes, g,
                                                                  count_include_pad, dx);
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
