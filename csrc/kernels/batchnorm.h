// Batch normalisation over (N, C, S) data: N samples, C channels, S spatial positions per
// channel (S = H * W for NCHW, 1 for (N, C)); statistics per channel. The activations (x, y,
// dy, dx) have type T, float32 or float16; the per-channel operands (scale, bias, running
// statistics, dscale, dbias) have type P, float32 or float16 (float16 only beside float16
// activations); the saved statistics (saved_mean, saved_inv_std) are always float32. float16
// values are loaded to float32 (per-channel ones once per channel, or per row of S values) and
// results rounded once (per-channel ones to float32 first, as the float32 kernel rounds them),
// so they equal the float32 kernel's on the same values, rounded to float16.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {
namespace kernels {
// The elementwise arithmetic of the CPU and CUDA kernels, in float: y from x with the
// channel's mean and a = scale * inv_std; dx from dy and x with the channel's mean and the
// coefficients p, q, r of the backward. Left to fuse one of dx's two products into an FMA,
// GCC picked a different one for half_t than for float, so BatchNormDx writes out the FMA
// that GCC and nvcc chose for float32 (plain arithmetic where the target has no FMA).
MS_HD float BatchNormY(float x, float mean, float a, float b) { return (x - mean) * a + b; }
// The fused ReLU (relu = true): max(v, 0) as ew::ReluF computes it (NaN -> 0), and its
// gradient's mask from the fused output y (ew::ReluBackwardF: dy where y > 0, else 0). A
// fused residual r is added to the normalised value rounded to T, and the ReLU applied to
// that sum (rounded to T when stored), as batch norm, add and ReLU in turn would.
MS_HD float BatchNormRelu(float v, bool relu) { return !relu || v > 0.f ? v : 0.f; }
MS_HD float ReluMask(float dy, float y) { return y > 0.f ? dy : 0.f; }
MS_HD float BatchNormDx(float dy, float x, float mean, float p, float q, float r) {
#if defined(__CUDA_ARCH__) || defined(__FP_FAST_FMAF)
  return fmaf(dy, p, (x - mean) * q) + r;
#else
  return dy * p + (x - mean) * q + r;
#endif
}

// Declared once for both namespaces (cpu, cuda), for (T, P) = (float, float), (half_t, float)
// and (half_t, half_t).
#define MS_BATCHNORM_KERNELS(T, P)                                                            \
  /* y = (x - mean) * inv_std * scale + bias with the batch mean and biased variance (plus   \
     `residual` where not null, then max(y, 0) with `relu`); saved_mean/saved_inv_std = mean, \
     1 / sqrt(var + eps) per channel; running stats updated in place: r = (1 - momentum) * r  \
     + momentum * stat, running_var with the unbiased variance var * M / (M - 1),             \
     M = N * S > 1. */                                                                        \
  void BatchNormForwardTraining(Context* ctx, const T* x, const P* scale, const P* bias,      \
                                P* running_mean, P* running_var, T* y, float* saved_mean,     \
                                float* saved_inv_std, int64_t n, int64_t c, int64_t s,        \
                                float momentum, float eps, bool relu, const T* residual);     \
  /* y = (x - running_mean) / sqrt(running_var + eps) * scale + bias (+ residual, then        \
     max(y, 0)). */                                                                           \
  void BatchNormForwardInference(Context* ctx, const T* x, const P* scale, const P* bias,     \
                                 const P* running_mean, const P* running_var, T* y,           \
                                 int64_t n, int64_t c, int64_t s, float eps, bool relu,       \
                                 const T* residual);                                          \
  /* Gradients of the training forward with respect to x, scale and bias; where the forward   \
     fused a ReLU, y is its output (dy counts only where y > 0), else null; where it fused a  \
     residual and `dresidual` is not null, the residual's gradient (dy, masked) goes there. */ \
  void BatchNormBackward(Context* ctx, const T* dy, const T* x, const T* y, const P* scale,   \
                         const float* saved_mean, const float* saved_inv_std, T* dx,          \
                         P* dscale, P* dbias, int64_t n, int64_t c, int64_t s,                \
                         T* dresidual);

namespace cpu {
MS_BATCHNORM_KERNELS(float, float)
MS_BATCHNORM_KERNELS(half_t, float)
MS_BATCHNORM_KERNELS(half_t, half_t)
}  // namespace cpu
namespace cuda {
MS_BATCHNORM_KERNELS(float, float)
MS_BATCHNORM_KERNELS(half_t, float)
MS_BATCHNORM_KERNELS(half_t, half_t)
}  // namespace cuda
#undef MS_BATCHNORM_KERNELS
}  // namespace kernels
}  // namespace minisinga
