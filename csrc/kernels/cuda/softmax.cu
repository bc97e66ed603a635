// CUDA softmax family. Rows (inner == 1) are reduced by one warp each (d <= 1024) or one
// block each; strided columns (inner > 1) by one thread each. Sums accumulate in double and
// reductions use fixed trees, as deterministic as the CPU's; the formulas are the CPU's.
#include <cstdint>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/softmax.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;
using cudak::kThreads;

template <typename T>
__device__ __forceinline__ float Ld(T v) {
  return DCvt<T>::Load(v);
}
template <typename T>
__device__ __forceinline__ T St(float v) {
  return DCvt<T>::Store(v);
}

struct MaxF {  // NaNs never enter (they are skipped while scanning)
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};
struct AddD {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// One warp per row.
struct WarpRows {
  static constexpr int kSize = 32;
  static __device__ int Lane() { return threadIdx.x & 31; }
  static __device__ int64_t First() {
    return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  }
  static __device__ int64_t Stride() { return (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5; }
  template <typename V, typename Op>
  static __device__ V Reduce(V v, Op op) {
    return cudak::WarpReduce(v, op);
  }
  static unsigned Grid(int64_t rows) { return cudak::Blocks(rows * 32); }
};

// One block per row (long rows).
struct BlockRows {
  static constexpr int kSize = kThreads;
  static __device__ int Lane() { return threadIdx.x; }
  static __device__ int64_t First() { return blockIdx.x; }
  static __device__ int64_t Stride() { return gridDim.x; }
  template <typename V, typename Op>
  static __device__ V Reduce(V v, Op op) {
    return cudak::BlockAllReduce(v, op);
  }
  static unsigned Grid(int64_t rows) {
    return static_cast<unsigned>(std::min<int64_t>(rows, cudak::kMaxBlocks));
  }
};

// Max of a row (NaNs skipped: they reach the output through the sum) and sum of exp(x - max).
template <typename G, typename T>
__device__ __forceinline__ void RowMaxSum(const T* x, int64_t d, float* max, double* sum) {
  float m = -cudak::Inff();
  for (int64_t k = G::Lane(); k < d; k += G::kSize) {
    const float v = Ld(x[k]);
    m = v > m ? v : m;
  }
  m = G::Reduce(m, MaxF());
  double s = 0;
  for (int64_t k = G::Lane(); k < d; k += G::kSize) s += expf(Ld(x[k]) - m);
  *max = m;
  *sum = G::Reduce(s, AddD());
}

template <typename G, typename T>
__global__ void SoftmaxRowsKernel(bool log, const T* x, T* y, int64_t rows, int64_t d) {
  for (int64_t row = G::First(); row < rows; row += G::Stride()) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    float m;
    double s;
    RowMaxSum<G>(xr, d, &m, &s);
    if (log) {
      const float lse = m + logf(static_cast<float>(s));
      for (int64_t k = G::Lane(); k < d; k += G::kSize) yr[k] = St<T>(Ld(xr[k]) - lse);
    } else {
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t k = G::Lane(); k < d; k += G::kSize) yr[k] = St<T>(expf(Ld(xr[k]) - m) * inv);
    }
  }
}

template <typename T>
__global__ void SoftmaxColsKernel(bool log, const T* x, T* y, int64_t outer, int64_t d,
                                  int64_t inner) {
  MS_CUDA_LOOP(t, outer * inner) {
    const int64_t base = t / inner * d * inner + t % inner;
    const T* xc = x + base;
    T* yc = y + base;
    float m = -cudak::Inff();
    for (int64_t k = 0; k < d; k++) {
      const float v = Ld(xc[k * inner]);
      m = v > m ? v : m;
    }
    double s = 0;
    for (int64_t k = 0; k < d; k++) s += expf(Ld(xc[k * inner]) - m);
    if (log) {
      const float lse = static_cast<float>(m + ::log(s));
      for (int64_t k = 0; k < d; k++) yc[k * inner] = St<T>(Ld(xc[k * inner]) - lse);
    } else {
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t k = 0; k < d; k++) yc[k * inner] = St<T>(expf(Ld(xc[k * inner]) - m) * inv);
    }
  }
}

template <typename G, typename T>
__global__ void BackwardRowsKernel(bool log, const T* y, const T* dy, T* dx, int64_t rows,
                                   int64_t d) {
  for (int64_t row = G::First(); row < rows; row += G::Stride()) {
    const T* yr = y + row * d;
    const T* gr = dy + row * d;
    T* xr = dx + row * d;
    double acc = 0;
    for (int64_t k = G::Lane(); k < d; k += G::kSize)
      acc += log ? static_cast<double>(Ld(gr[k])) : static_cast<double>(Ld(gr[k]) * Ld(yr[k]));
    const float a = static_cast<float>(G::Reduce(acc, AddD()));
    for (int64_t k = G::Lane(); k < d; k += G::kSize)
      xr[k] = log ? St<T>(Ld(gr[k]) - expf(Ld(yr[k])) * a) : St<T>(Ld(yr[k]) * (Ld(gr[k]) - a));
  }
}

template <typename T>
__global__ void BackwardColsKernel(bool log, const T* y, const T* dy, T* dx, int64_t outer,
                                   int64_t d, int64_t inner) {
  MS_CUDA_LOOP(t, outer * inner) {
    const int64_t base = t / inner * d * inner + t % inner;
    double acc = 0;
    for (int64_t k = 0; k < d; k++) {
      const int64_t e = base + k * inner;
      acc += log ? static_cast<double>(Ld(dy[e])) : static_cast<double>(Ld(dy[e]) * Ld(y[e]));
    }
    const float a = static_cast<float>(acc);
    for (int64_t k = 0; k < d; k++) {
      const int64_t e = base + k * inner;
      dx[e] = log ? St<T>(Ld(dy[e]) - expf(Ld(y[e])) * a) : St<T>(Ld(y[e]) * (Ld(dy[e]) - a));
    }
  }
}

// The label of row i, or -1 when it is outside [0, c).
__device__ __forceinline__ int64_t Label(const void* target, int64_t i, int64_t c) {
  const int32_t t = static_cast<const int32_t*>(target)[i];
  return t >= 0 && t < c ? t : -1;
}

__device__ __forceinline__ float ClampP(float p) {
  return p > kCrossEntropyEps ? p : kCrossEntropyEps;
}

template <typename T>
__global__ void SceKernel(const T* x, const void* target, bool labels, T* loss, T* prob,
                          int64_t n, int64_t c) {
  using G = WarpRows;
  for (int64_t row = G::First(); row < n; row += G::Stride()) {
    const T* xr = x + row * c;
    T* pr = prob + row * c;
    float m;
    double s;
    RowMaxSum<G>(xr, c, &m, &s);
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t k = G::Lane(); k < c; k += G::kSize) pr[k] = St<T>(expf(Ld(xr[k]) - m) * inv);
    const float log_s = logf(static_cast<float>(s));
    double l;  // -log softmax[k] = (m - x[k]) + log s
    if (labels) {
      const int64_t t = Label(target, row, c);
      l = t < 0 ? static_cast<double>(cudak::NaNf()) : static_cast<double>((m - Ld(xr[t])) + log_s);
    } else {
      const T* tr = static_cast<const T*>(target) + row * c;
      double part = 0;
      for (int64_t k = G::Lane(); k < c; k += G::kSize)
        part += Ld(tr[k]) * ((m - Ld(xr[k])) + log_s);
      l = G::Reduce(part, AddD());
    }
    if (G::Lane() == 0) loss[row] = St<T>(static_cast<float>(l));
  }
}

template <typename T>
__global__ void SceBackwardKernel(const T* prob, const void* target, bool labels,
                                  const T* dloss, T* dx, int64_t n, int64_t c) {
  MS_CUDA_LOOP(e, n * c) {
    const int64_t i = e / c, k = e % c;
    const float g = Ld(dloss[i]);
    const float p = Ld(prob[e]);
    if (labels) {
      const int64_t t = Label(target, i, c);
      dx[e] = k == t ? St<T>((p - 1.0f) * g) : St<T>(p * (t < 0 ? 0.0f : g));
    } else {
      dx[e] = St<T>((p - Ld(static_cast<const T*>(target)[e])) * g);
    }
  }
}

template <typename T>
__global__ void CeKernel(const T* prob, const void* target, bool labels, T* loss, int64_t n,
                         int64_t c) {
  using G = WarpRows;
  for (int64_t row = G::First(); row < n; row += G::Stride()) {
    const T* pr = prob + row * c;
    double l;
    if (labels) {
      const int64_t t = Label(target, row, c);
      l = t < 0 ? static_cast<double>(cudak::NaNf()) : -logf(ClampP(Ld(pr[t])));
    } else {
      const T* tr = static_cast<const T*>(target) + row * c;
      double part = 0;
      for (int64_t k = G::Lane(); k < c; k += G::kSize)
        part -= Ld(tr[k]) * logf(ClampP(Ld(pr[k])));
      l = G::Reduce(part, AddD());
    }
    if (G::Lane() == 0) loss[row] = St<T>(static_cast<float>(l));
  }
}

template <typename T>
__global__ void CeBackwardKernel(const T* prob, const void* target, bool labels, const T* dloss,
                                 T* dx, int64_t n, int64_t c) {
  MS_CUDA_LOOP(e, n * c) {
    const int64_t i = e / c, k = e % c;
    const float g = Ld(dloss[i]);
    if (labels) {
      const int64_t t = Label(target, i, c);
      dx[e] = k == t ? St<T>(-g / ClampP(Ld(prob[e]))) : St<T>(0.0f);
    } else {
      dx[e] = St<T>(-Ld(static_cast<const T*>(target)[e]) / ClampP(Ld(prob[e])) * g);
    }
  }
}

}  // namespace

void Softmax(Context* ctx, bool log, DType dt, const void* x, void* y, int64_t outer, int64_t d,
             int64_t inner) {
  if (outer * d * inner == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    if (inner > 1)
      SoftmaxColsKernel<<<cudak::Blocks(outer * inner), kThreads, 0, s>>>(log, xp, yp, outer, d,
                                                                         inner);
    else if (d <= 1024)
      SoftmaxRowsKernel<WarpRows><<<WarpRows::Grid(outer), kThreads, 0, s>>>(log, xp, yp, outer, d);
    else
      SoftmaxRowsKernel<BlockRows><<<BlockRows::Grid(outer), kThreads, 0, s>>>(log, xp, yp, outer,
                                                                            d);
  });
  MS_CUDA_LAUNCH_CHECK("SoftmaxKernel");
}

void SoftmaxBackward(Context* ctx, bool log, DType dt, const void* y, const void* dy, void* dx,
                     int64_t outer, int64_t d, int64_t inner) {
  if (outer * d * inner == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* yp = static_cast<const T*>(y);
    const T* gp = static_cast<const T*>(dy);
    T* xp = static_cast<T*>(dx);
    if (inner > 1)
      BackwardColsKernel<<<cudak::Blocks(outer * inner), kThreads, 0, s>>>(log, yp, gp, xp, outer,
                                                                          d, inner);
    else if (d <= 1024)
      BackwardRowsKernel<WarpRows><<<WarpRows::Grid(outer), kThreads, 0, s>>>(log, yp, gp, xp,
                                                                             outer, d);
    else
      BackwardRowsKernel<BlockRows><<<BlockRows::Grid(outer), kThreads, 0, s>>>(log, yp, gp, xp,
                                                                               outer, d);
  });
  MS_CUDA_LAUNCH_CHECK("SoftmaxBackwardKernel");
}

void SoftmaxCrossEntropy(Context* ctx, DType dt, const void* logits, const void* target,
                         bool labels, void* loss, void* prob, int64_t n, int64_t c) {
  if (n * c == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    SceKernel<<<WarpRows::Grid(n), kThreads, 0, s>>>(static_cast<const T*>(logits), target, labels,
                                                    static_cast<T*>(loss), static_cast<T*>(prob),
                                                    n, c);
  });
  MS_CUDA_LAUNCH_CHECK("SceKernel");
}

void SoftmaxCrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target,
                                 bool labels, const void* dloss, void* dlogits, int64_t n,
                                 int64_t c) {
  if (n * c == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    SceBackwardKernel<<<cudak::Blocks(n * c), kThreads, 0, s>>>(
        static_cast<const T*>(prob), target, labels, static_cast<const T*>(dloss),
        static_cast<T*>(dlogits), n, c);
  });
  MS_CUDA_LAUNCH_CHECK("SceBackwardKernel");
}

void CrossEntropy(Context* ctx, DType dt, const void* prob, const void* target, bool labels,
                  void* loss, int64_t n, int64_t c) {
  if (n * c == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CeKernel<<<WarpRows::Grid(n), kThreads, 0, s>>>(static_cast<const T*>(prob), target, labels,
                                                   static_cast<T*>(loss), n, c);
  });
  MS_CUDA_LAUNCH_CHECK("CeKernel");
}

void CrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target, bool labels,
                          const void* dloss, void* dprob, int64_t n, int64_t c) {
  if (n * c == 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CeBackwardKernel<<<cudak::Blocks(n * c), kThreads, 0, s>>>(
        static_cast<const T*>(prob), target, labels, static_cast<const T*>(dloss),
        static_cast<T*>(dprob), n, c);
  });
  MS_CUDA_LAUNCH_CHECK("CeBackwardKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
