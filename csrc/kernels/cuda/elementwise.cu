// CUDA elementwise kernels: the functors of elementwise_ops.h (shared with the CPU), a flat
// grid-stride loop for unary ops and fill, and a strided loop over a StridedPlan for the
// broadcasting binary ops and where (32-bit index arithmetic when the sizes allow).
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/elementwise.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;

template <typename T, typename F, typename C>
__global__ void UnaryKernel(F f, const T* x, T* y, int64_t n, C a, C b) {
  MS_CUDA_LOOP(i, n) y[i] = DCvt<T>::Store(f(C(DCvt<T>::Load(x[i])), a, b));
}

template <typename T>
void UnaryT(cudaStream_t s, UnaryOp op, const T* x, T* y, int64_t n, double a, double b) {
  using C = typename ew::ComputeT<T>::type;
  const C ca = static_cast<C>(a), cb = static_cast<C>(b);
  switch (op) {
#define MS_CASE(Name, expr)                                                                   \
  case UnaryOp::k##Name:                                                                      \
    UnaryKernel<<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(ew::Name##F(), x, y, n, ca, cb); \
    break;
    MS_UNARY_OPS(MS_CASE)
#undef MS_CASE
    default:
      MS_FAIL("unary: unknown op " << static_cast<int>(op));
  }
  MS_CUDA_LAUNCH_CHECK("UnaryKernel");
}

// Element offsets of flat output index i in each of the plan's first N operands.
template <int N, typename I>
__device__ __forceinline__ void PlanOffsets(const StridedPlan& p, I i, I* off) {
  for (int k = 0; k < N; k++) off[k] = 0;
  for (int d = p.ndim - 1; d >= 0; d--) {
    const I dim = static_cast<I>(p.shape[d]);
    const I idx = i % dim;
    i /= dim;
    for (int k = 0; k < N; k++) off[k] += idx * static_cast<I>(p.stride[k][d]);
  }
}

template <typename T, typename F, typename I>
__global__ void BinaryKernel(F f, const T* x, const T* y, T* out, const StridedPlan p) {
  using C = typename ew::ComputeT<T>::type;
  const I n = static_cast<I>(p.numel);
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[2];
    if (p.ndim == 1) {
      off[0] = i * static_cast<I>(p.stride[0][0]);
      off[1] = i * static_cast<I>(p.stride[1][0]);
    } else {
      PlanOffsets<2>(p, i, off);
    }
    out[i] = DCvt<T>::Store(f(C(DCvt<T>::Load(x[off[0]])), C(DCvt<T>::Load(y[off[1]]))));
  }
}

// Whether every index and offset of the plan fits in 32 bits.
bool Fits32(const StridedPlan& p) {
  if (p.numel > std::numeric_limits<int32_t>::max()) return false;
  for (int k = 0; k < p.nin; k++) {
    int64_t span = 0;
    for (int d = 0; d < p.ndim; d++) span += (p.shape[d] - 1) * p.stride[k][d];
    if (span > std::numeric_limits<int32_t>::max()) return false;
  }
  return true;
}

template <typename T, typename F>
void LaunchBinary(cudaStream_t s, F f, const T* x, const T* y, T* out, const StridedPlan& p) {
  const unsigned blocks = cudak::Blocks(p.numel);
  if (Fits32(p))
    BinaryKernel<T, F, uint32_t><<<blocks, cudak::kThreads, 0, s>>>(f, x, y, out, p);
  else
    BinaryKernel<T, F, int64_t><<<blocks, cudak::kThreads, 0, s>>>(f, x, y, out, p);
  MS_CUDA_LAUNCH_CHECK("BinaryKernel");
}

template <typename T>
void BinaryT(cudaStream_t s, BinaryOp op, const T* x, const T* y, T* out, const StridedPlan& p) {
  switch (op) {
#define MS_CASE(Name, expr)                           \
  case BinaryOp::k##Name:                             \
    return LaunchBinary<T>(s, ew::Name##F(), x, y, out, p);
    MS_BINARY_OPS(MS_CASE)
#undef MS_CASE
    default:
      MS_FAIL("binary: unknown op " << static_cast<int>(op));
  }
}

template <typename TC, typename T, typename I>
__global__ void WhereKernel(const TC* c, const T* x, const T* y, T* out, const StridedPlan p) {
  const I n = static_cast<I>(p.numel);
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[3];
    PlanOffsets<3>(p, i, off);
    out[i] = DCvt<TC>::Load(c[off[0]]) != 0 ? x[off[1]] : y[off[2]];
  }
}

template <typename T>
__global__ void FillKernel(T* out, int64_t n, T v) {
  MS_CUDA_LOOP(i, n) out[i] = v;
}

}  // namespace

void Unary(Context* ctx, UnaryOp op, DType dt, const void* x, void* y, int64_t n, double a,
           double b) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MS_TYPE_SWITCH(dt, T, UnaryT<T>(s, op, static_cast<const T*>(x), static_cast<T*>(y), n, a, b));
}

void Binary(Context* ctx, BinaryOp op, DType dt, const void* x, const void* y, void* out,
            const StridedPlan& plan) {
  if (plan.numel <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MS_TYPE_SWITCH(dt, T,
                 BinaryT<T>(s, op, static_cast<const T*>(x), static_cast<const T*>(y),
                            static_cast<T*>(out), plan));
}

void Where(Context* ctx, DType cond_dt, DType dt, const void* cond, const void* x,
           const void* y, void* out, const StridedPlan& p) {
  if (p.numel <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  const unsigned blocks = cudak::Blocks(p.numel);
  const bool small = Fits32(p);
  MS_TYPE_SWITCH(cond_dt, TC, MS_TYPE_SWITCH(dt, T, {
    const TC* c = static_cast<const TC*>(cond);
    const T* xp = static_cast<const T*>(x);
    const T* yp = static_cast<const T*>(y);
    T* o = static_cast<T*>(out);
    if (small)
      WhereKernel<TC, T, uint32_t><<<blocks, cudak::kThreads, 0, s>>>(c, xp, yp, o, p);
    else
      WhereKernel<TC, T, int64_t><<<blocks, cudak::kThreads, 0, s>>>(c, xp, yp, o, p);
  }));
  MS_CUDA_LAUNCH_CHECK("WhereKernel");
}

void Fill(Context* ctx, DType dt, void* out, int64_t n, double value) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MS_TYPE_SWITCH(dt, T, {
    // Converted on the host exactly as the CPU kernel does.
    const T v = Cvt<T>::Store(static_cast<typename ew::ComputeT<T>::type>(value));
    FillKernel<T><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(static_cast<T*>(out), n, v);
  });
  MS_CUDA_LAUNCH_CHECK("FillKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
