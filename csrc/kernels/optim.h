// Optim family: fused, in-place parameter updates (PyTorch's formulas), one pass over the
// parameter. param and grad are float32 or float16 (T), the state tensors float32 or float16
// (S): all float32, all float16, or float16 parameters with float32 state (what minisinga.opt
// keeps for them). float16 values are loaded to float32, updated with the float32 arithmetic
// and each updated tensor rounded once to float16 (the float32 kernel's results on the same
// values, rounded). The learning
// rate `lr` and Adam's `step` are pointers to 1-element float32 device tensors read inside the
// kernel, so a recorded graph sees their current values. So are the float settings after n
// where `hyper` is not null: a float32 device array holding them in the order of the
// arguments (SGD: momentum, dampening, weight_decay), read when the kernel runs instead of
// those arguments -- what opt's DecaySchedulers rewrite at every step. Every update first
// forms g = grad + weight_decay * param (L2 decay).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {
namespace kernels {
// The elementwise arithmetic shared by the CPU and CUDA kernels, in float.

// g + wd * p, skipped when wd == 0 as PyTorch does (so an inf param gives no NaN).
MS_HD float OptimDecayed(float g, float p, float wd) { return wd != 0.0f ? g + wd * p : g; }

// A running state's update c * s + d from its old value s, where d is the new term (itself a
// product: (1 - b1) * g, (1 - b2) * g * g, ...). Left to fuse one of the two products into an
// FMA, a compiler may pick a different one for half_t than for float (GCC did here, and on
// the restructured float32 loops too), so this writes out the FMA that GCC and nvcc chose for
// the original float32 kernels (plain arithmetic where the target has no FMA).
MS_HD float OptimState(float c, float s, float d) {
#if defined(__CUDA_ARCH__) || defined(__FP_FAST_FMAF)
  return fmaf(c, s, d);
#else
  return c * s + d;
#endif
}

// Setting i of a kernel: hyper[i] where the values live in device memory, else v.
MS_HD float OptimHyper(const float* hyper, int i, float v) { return hyper ? hyper[i] : v; }

// Declared once for both namespaces (cpu, cuda), for (T, S) = (float, float),
// (half_t, half_t) and (half_t, float): param and grad are T, the states S; lr and step are
// float32.
#define MS_OPTIM_KERNELS(T, S)                                                                   \
  /* With momentum != 0 (buf non-null): buf = first ? g : momentum * buf + (1 - dampening)  \
     * g, where first = (step != nullptr && *step <= 1); nesterov: g += momentum * buf,     \
     else g = buf. Then param -= lr * g. */                                                 \
  void SgdUpdate(Context* ctx, T* param, const T* grad, S* buf, const float* lr,            \
                 const float* step, int64_t n, float momentum, float dampening,             \
                 float weight_decay, bool nesterov, const float* hyper);                    \
  /* m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;                                        \
     param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = *step (>= 1). */ \
  void AdamUpdate(Context* ctx, T* param, const T* grad, S* m, S* v, const float* lr,       \
                  const float* step, int64_t n, float beta1, float beta2, float eps,        \
                  float weight_decay, const float* hyper);                                  \
  /* sum_sq += g^2; param -= lr * g / (sqrt(sum_sq) + eps). */                              \
  void AdagradUpdate(Context* ctx, T* param, const T* grad, S* sum_sq, const float* lr,     \
                     int64_t n, float eps, float weight_decay, const float* hyper);         \
  /* sq_avg = rho sq_avg + (1 - rho) g^2; param -= lr * g / (sqrt(sq_avg) + eps). */        \
  void RmspropUpdate(Context* ctx, T* param, const T* grad, S* sq_avg, const float* lr,     \
                     int64_t n, float rho, float eps, float weight_decay,                   \
                     const float* hyper);

namespace cpu {
MS_OPTIM_KERNELS(float, float)
MS_OPTIM_KERNELS(half_t, half_t)
MS_OPTIM_KERNELS(half_t, float)
}  // namespace cpu
namespace cuda {
MS_OPTIM_KERNELS(float, float)
MS_OPTIM_KERNELS(half_t, half_t)
MS_OPTIM_KERNELS(half_t, float)
}  // namespace cuda
#undef MS_OPTIM_KERNELS
}  // namespace kernels
}  // namespace minisinga
