// CUDA batch norm (indices split by FastDiv). Per-channel statistics are deterministic
// two-stage reductions in double: blocks (channel, part) reduce a fixed range of the channel's
// N * S values with a block tree, then per-channel kernels combine the parts in order. One
// pass over x gives the sums of d and of d^2, d = x - x0 for the channel's first value x0
// (the CPU makes two passes: the mean, then squared deviations). var = E[d^2] - E[d]^2 in
// double then loses ~n * 1e-16 * E[d]^2 / var of its value (n: the values one thread adds
// up), where x^2 itself would lose ~n * 1e-16 * mean^2 / var: the shift keeps a channel
// whose mean dwarfs its spread (mean / std of 1e4) exact to float32. The per-channel
// coefficients are
// computed once, in double with the CPU's roundings, and an elementwise kernel applies them.
// The kernels that touch activations are templates on their type T (float, half_t), the
// per-channel kernels on the per-channel type P (float, half_t), which they load once per
// channel (bias into the coefficients, so the elementwise kernels read only float
// coefficients) and store rounded to float first, as the float32 kernel does, then to P:
// loads and stores go through cudak::DCvt, the arithmetic is the same for all.
#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/cuda/util.cuh"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;
using cudak::kThreads;

struct AddD {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// Parts per channel: enough blocks to fill the GPU, each part at least 8192 values.
int64_t Parts(int64_t c, int64_t m) {
  int64_t p = std::max<int64_t>(1, std::min<int64_t>((1024 + c - 1) / c, (m + 8191) / 8192));
  return std::min<int64_t>(p, 64);
}

// Indices are split by FastDiv (uint32_t) when the tensor has fewer than 2^31 elements, else
// by SlowDiv (int64_t): the kernels take the index type I and the divider Dv.

// Element e (< N * S) of channel ch; s divides by S.
template <typename I, typename Dv>
__device__ __forceinline__ int64_t At(I e, int64_t ch, int64_t c, const Dv& s) {
  return (static_cast<int64_t>(s.Div(e)) * c + ch) * static_cast<int64_t>(s.divisor()) +
         s.Mod(e);
}

// Block (ch, p): sums[ch * parts + p] and squares[ch * parts + p] = the sums over its range
// of d and of d^2, d = x - pivots[ch] (the channel's first value; 0 for an empty one).
template <typename I, typename Dv, typename T>
__global__ void StatKernel(const T* x, int64_t c, const Dv s, int64_t m, int64_t parts,
                           double* sums, double* squares, double* pivots) {
  const int64_t ch = blockIdx.x, p = blockIdx.y;
  const I e0 = static_cast<I>(m * p / parts), e1 = static_cast<I>(m * (p + 1) / parts);
  const double x0 = m > 0 ? double(DCvt<T>::Load(x[At(static_cast<I>(0), ch, c, s)])) : 0.0;
  double sum = 0, sq = 0;
  for (I e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const double d = DCvt<T>::Load(x[At(e, ch, c, s)]) - x0;
    sum += d;
    sq += d * d;
  }
  sum = cudak::BlockAllReduce(sum, AddD());
  sq = cudak::BlockAllReduce(sq, AddD());
  if (threadIdx.x == 0) {
    sums[ch * parts + p] = sum;
    squares[ch * parts + p] = sq;
    if (p == 0) pivots[ch] = x0;
  }
}

// y = (x - coef[3ch]) * coef[3ch + 1] + coef[3ch + 2] (mean, scale * inv_std, bias), plus
// res (rounded to T first) where not null, then max(y, 0) with `relu`; ch = e / S % C.
template <typename I, typename Dv, typename T>
__global__ void ApplyKernel(const T* x, const float* coef, const T* res, T* y, const Dv c,
                            const Dv s, I total, bool relu) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const float* k = coef + 3 * c.Mod(s.Div(e));
    float v = BatchNormY(DCvt<T>::Load(x[e]), k[0], k[1], k[2]);
    if (res) v = DCvt<T>::Load(DCvt<T>::Store(v)) + DCvt<T>::Load(res[e]);
    y[e] = DCvt<T>::Store(BatchNormRelu(v, relu));
  }
}

// dy, masked by the fused ReLU's output y > 0 where there is one.
template <typename T>
__device__ __forceinline__ float Grad(const T* dy, const T* y, int64_t k) {
  const float g = DCvt<T>::Load(dy[k]);
  return y ? ReluMask(g, DCvt<T>::Load(y[k])) : g;
}

template <typename P>
__global__ void TrainStatsKernel(const double* sums, const double* squares,
                                 const double* pivots, int64_t c, int64_t parts, int64_t m,
                                 const P* scale, const P* bias,
                                 P* running_mean, P* running_var, float* saved_mean,
                                 float* saved_inv_std, float momentum, float eps, float* coef) {
  MS_CUDA_LOOP(ch, c) {
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < parts; k++) sum += sums[ch * parts + k];
    for (int64_t k = 0; k < parts; k++) sq += squares[ch * parts + k];
    const double shift = sum / m;  // E[d]
    const double mean = pivots[ch] + shift;
    const double var = fmax(sq / m - shift * shift, 0.0);
    const double ssd = var * m;  // the sum of squared deviations
    const double inv_std = 1.0 / sqrt(var + double(eps));
    saved_mean[ch] = static_cast<float>(mean);
    saved_inv_std[ch] = static_cast<float>(inv_std);
    const double mom = momentum;
    const double rm = DCvt<P>::Load(running_mean[ch]), rv = DCvt<P>::Load(running_var[ch]);
    running_mean[ch] = DCvt<P>::Store(static_cast<float>((1 - mom) * rm + mom * mean));
    running_var[ch] = DCvt<P>::Store(static_cast<float>((1 - mom) * rv + mom * ssd / (m - 1)));
    coef[3 * ch] = static_cast<float>(mean);
    coef[3 * ch + 1] = static_cast<float>(double(DCvt<P>::Load(scale[ch])) * inv_std);
    coef[3 * ch + 2] = DCvt<P>::Load(bias[ch]);
  }
}

template <typename P>
__global__ void InferenceCoefKernel(const P* scale, const P* bias, const P* running_mean,
                                    const P* running_var, int64_t c, float eps, float* coef) {
  MS_CUDA_LOOP(ch, c) {
    const double inv_std = 1.0 / sqrt(double(DCvt<P>::Load(running_var[ch])) + double(eps));
    coef[3 * ch] = DCvt<P>::Load(running_mean[ch]);
    coef[3 * ch + 1] = static_cast<float>(double(DCvt<P>::Load(scale[ch])) * inv_std);
    coef[3 * ch + 2] = DCvt<P>::Load(bias[ch]);
  }
}

// Block (ch, p): partial sums of dy and of dy * xhat over its range.
template <typename I, typename Dv, typename T>
__global__ void GradStatKernel(const T* dy, const T* x, const T* y, const float* saved_mean,
                               const float* saved_inv_std, int64_t c, const Dv s, int64_t m,
                               int64_t parts, double* pdb, double* pds) {
  const int64_t ch = blockIdx.x, p = blockIdx.y;
  const double mean = saved_mean[ch], inv_std = saved_inv_std[ch];
  const I e0 = static_cast<I>(m * p / parts), e1 = static_cast<I>(m * (p + 1) / parts);
  double db = 0, ds = 0;
  for (I e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const int64_t k = At(e, ch, c, s);
    const double g = Grad(dy, y, k);
    db += g;
    ds += g * ((double(DCvt<T>::Load(x[k])) - mean) * inv_std);
  }
  db = cudak::BlockAllReduce(db, AddD());
  ds = cudak::BlockAllReduce(ds, AddD());
  if (threadIdx.x == 0) {
    pdb[ch * parts + p] = db;
    pds[ch * parts + p] = ds;
  }
}

// dbias = sum(dy), dscale = sum(dy * xhat); coef = (mean, p, q, r) with
// dx = dy * p + (x - mean) * q + r (BatchNormDx, the CPU's expansion, same roundings).
template <typename P>
__global__ void GradCoefKernel(const double* pdb, const double* pds, int64_t c, int64_t parts,
                               int64_t m, const P* scale, const float* saved_mean,
                               const float* saved_inv_std, P* dscale, P* dbias, float* coef) {
  MS_CUDA_LOOP(ch, c) {
    double db = 0, ds = 0;
    for (int64_t k = 0; k < parts; k++) db += pdb[ch * parts + k];
    for (int64_t k = 0; k < parts; k++) ds += pds[ch * parts + k];
    dbias[ch] = DCvt<P>::Store(static_cast<float>(db));
    dscale[ch] = DCvt<P>::Store(static_cast<float>(ds));
    const double inv_std = saved_inv_std[ch];
    const double k = double(DCvt<P>::Load(scale[ch])) * inv_std / double(m);
    coef[4 * ch] = saved_mean[ch];
    coef[4 * ch + 1] = static_cast<float>(k * m);
    coef[4 * ch + 2] = static_cast<float>(-k * ds * inv_std);
    coef[4 * ch + 3] = static_cast<float>(-k * db);
  }
}

template <typename I, typename Dv, typename T>
__global__ void GradApplyKernel(const T* dy, const T* x, const T* y, const float* coef, T* dx,
                                T* dres, const Dv c, const Dv s, I total) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const float* k = coef + 4 * c.Mod(s.Div(e));
    const float g = Grad(dy, y, e);
    if (dres) dres[e] = DCvt<T>::Store(g);
    const float v = BatchNormDx(g, DCvt<T>::Load(x[e]), k[0], k[1], k[2], k[3]);
    dx[e] = DCvt<T>::Store(v);
  }
}

// Runs f(I{}, divider of C, divider of S, total) with the 32-bit types when n * c * s fits.
template <typename F>
void WithIndex(int64_t n, int64_t c, int64_t s, F f) {
  const int64_t total = n * c * s;
  if (cudak::Fits31(total))
    f(uint32_t{}, FastDiv(std::max<int64_t>(c, 1)), FastDiv(std::max<int64_t>(s, 1)),
      static_cast<uint32_t>(total));
  else
    f(int64_t{}, cudak::SlowDiv(c), cudak::SlowDiv(s), total);
}

template <typename T, typename P>
void ForwardTrainingT(Context* ctx, const T* x, const P* scale, const P* bias, P* running_mean,
                      P* running_var, T* y, float* saved_mean, float* saved_inv_std, int64_t n,
                      int64_t c, int64_t s, float momentum, float eps, bool relu,
                      const T* res) {
  if (c <= 0) return;
  cudaStream_t st = cudak::Stream(ctx);
  const int64_t m = n * s, parts = Parts(c, m);
  cudak::Scratch scratch(ctx, (2 * c * parts + c) * sizeof(double) + 3 * sizeof(float) * c);
  double* sums = scratch.as<double>();
  double* squares = sums + c * parts;
  double* pivots = squares + c * parts;
  float* coef = reinterpret_cast<float*>(pivots + c);
  const dim3 grid(static_cast<unsigned>(c), static_cast<unsigned>(parts));
  WithIndex(n, c, s, [&](auto i, auto, auto ds, auto) {
    StatKernel<decltype(i)><<<grid, kThreads, 0, st>>>(x, c, ds, m, parts, sums, squares,
                                                       pivots);
  });
  MS_CUDA_LAUNCH_CHECK("StatKernel");
  TrainStatsKernel<<<cudak::Blocks(c), kThreads, 0, st>>>(
      sums, squares, pivots, c, parts, m, scale, bias, running_mean, running_var, saved_mean,
      saved_inv_std, momentum, eps, coef);
  MS_CUDA_LAUNCH_CHECK("TrainStatsKernel");
  if (m == 0) return;
  WithIndex(n, c, s, [&](auto, auto dc, auto ds, auto total) {
    ApplyKernel<<<cudak::Blocks(total), kThreads, 0, st>>>(x, coef, res, y, dc, ds, total,
                                                           relu);
  });
  MS_CUDA_LAUNCH_CHECK("ApplyKernel");
}

template <typename T, typename P>
void ForwardInferenceT(Context* ctx, const T* x, const P* scale, const P* bias,
                       const P* running_mean, const P* running_var, T* y, int64_t n, int64_t c,
                       int64_t s, float eps, bool relu, const T* res) {
  const int64_t total = n * c * s;
  if (total <= 0) return;
  cudaStream_t st = cudak::Stream(ctx);
  cudak::Scratch scratch(ctx, 3 * sizeof(float) * c);
  float* coef = scratch.as<float>();
  InferenceCoefKernel<<<cudak::Blocks(c), kThreads, 0, st>>>(scale, bias, running_mean,
                                                             running_var, c, eps, coef);
  MS_CUDA_LAUNCH_CHECK("InferenceCoefKernel");
  WithIndex(n, c, s, [&](auto, auto dc, auto ds, auto t) {
    ApplyKernel<<<cudak::Blocks(t), kThreads, 0, st>>>(x, coef, res, y, dc, ds, t, relu);
  });
  MS_CUDA_LAUNCH_CHECK("ApplyKernel");
}

template <typename T, typename P>
void BackwardT(Context* ctx, const T* dy, const T* x, const T* y, const P* scale,
               const float* saved_mean, const float* saved_inv_std, T* dx, P* dscale, P* dbias,
               int64_t n, int64_t c, int64_t s, T* dres) {
  if (c <= 0) return;
  cudaStream_t st = cudak::Stream(ctx);
  const int64_t m = n * s, parts = Parts(c, m);
  cudak::Scratch scratch(ctx, 2 * sizeof(double) * c * parts + 4 * sizeof(float) * c);
  double* pdb = scratch.as<double>();
  double* pds = pdb + c * parts;
  float* coef = reinterpret_cast<float*>(pds + c * parts);
  const dim3 grid(static_cast<unsigned>(c), static_cast<unsigned>(parts));
  WithIndex(n, c, s, [&](auto i, auto, auto ds, auto) {
    GradStatKernel<decltype(i)><<<grid, kThreads, 0, st>>>(dy, x, y, saved_mean, saved_inv_std,
                                                           c, ds, m, parts, pdb, pds);
  });
  MS_CUDA_LAUNCH_CHECK("GradStatKernel");
  GradCoefKernel<<<cudak::Blocks(c), kThreads, 0, st>>>(pdb, pds, c, parts, m, scale, saved_mean,
                                                        saved_inv_std, dscale, dbias, coef);
  MS_CUDA_LAUNCH_CHECK("GradCoefKernel");
  if (m == 0) return;
  WithIndex(n, c, s, [&](auto, auto dc, auto ds, auto total) {
    GradApplyKernel<<<cudak::Blocks(total), kThreads, 0, st>>>(dy, x, y, coef, dx, dres, dc,
                                                               ds, total);
  });
  MS_CUDA_LAUNCH_CHECK("GradApplyKernel");
}

}  // namespace

#define MS_BATCHNORM_CUDA(T, P)                                                               \
  void BatchNormForwardTraining(Context* ctx, const T* x, const P* scale, const P* bias,      \
                                P* running_mean, P* running_var, T* y, float* saved_mean,     \
                                float* saved_inv_std, int64_t n, int64_t c, int64_t s,        \
                                float momentum, float eps, bool relu, const T* residual) {    \
    ForwardTrainingT(ctx, x, scale, bias, running_mean, running_var, y, saved_mean,           \
                     saved_inv_std, n, c, s, momentum, eps, relu, residual);                  \
  }                                                                                           \
  void BatchNormForwardInference(Context* ctx, const T* x, const P* scale, const P* bias,     \
                                 const P* running_mean, const P* running_var, T* y,           \
                                 int64_t n, int64_t c, int64_t s, float eps, bool relu,       \
                                 const T* residual) {                                         \
    ForwardInferenceT(ctx, x, scale, bias, running_mean, running_var, y, n, c, s, eps, relu,  \
                      residual);                                                              \
  }                                                                                           \
  void BatchNormBackward(Context* ctx, const T* dy, const T* x, const T* y, const P* scale,   \
                         const float* saved_mean, const float* saved_inv_std, T* dx,          \
                         P* dscale, P* dbias, int64_t n, int64_t c, int64_t s,                \
                         T* dresidual) {                                                      \
    BackwardT(ctx, dy, x, y, scale, saved_mean, saved_inv_std, dx, dscale, dbias, n, c, s,    \
              dresidual);                                                                     \
  }

MS_BATCHNORM_CUDA(float, float)
MS_BATCHNORM_CUDA(half_t, float)
MS_BATCHNORM_CUDA(half_t, half_t)
#undef MS_BATCHNORM_CUDA

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
