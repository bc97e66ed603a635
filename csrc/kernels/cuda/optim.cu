// CUDA fused optimizer updates: one grid-stride loop each, with the CPU's formulas. The
// learning rate and step live in device memory and are read by the kernels, so a recorded
// (or captured) graph sees their current values. Adam's bias corrections are computed once
// per block, in double as on the CPU.
#include <cstdint>

#include "kernels/cuda/util.cuh"
#include "kernels/optim.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

// g + wd * param, skipped when wd == 0 as PyTorch does (so an inf param gives no NaN).
__device__ __forceinline__ float Decayed(float g, float p, float wd) {
  return wd != 0.0f ? g + wd * p : g;
}

__global__ void SgdKernel(float* param, const float* grad, float* buf, const float* lr,
                          const float* step, int64_t n, float momentum, float dampening,
                          float wd, bool nesterov) {
  const float a = *lr;
  if (buf == nullptr) {
    MS_CUDA_LOOP(i, n) param[i] -= a * Decayed(grad[i], param[i], wd);
    return;
  }
  const bool first = step != nullptr && *step <= 1.0f;
  // buf = mb * buf + gb * g covers both the first step (0, 1) and later ones.
  const float mb = first ? 0.0f : momentum, gb = first ? 1.0f : 1.0f - dampening;
  MS_CUDA_LOOP(i, n) {
    const float g = Decayed(grad[i], param[i], wd);
    const float b = mb * buf[i] + gb * g;
    buf[i] = b;
    param[i] -= a * (nesterov ? g + momentum * b : b);
  }
}

__global__ void AdamKernel(float* param, const float* grad, float* m, float* v, const float* lr,
                           const float* step, int64_t n, float b1, float b2, float eps,
                           float wd) {
  __shared__ float coef[2];
  if (threadIdx.x == 0) {
    const double t = *step;
    const double bc1 = 1.0 - pow(double(b1), t), bc2 = 1.0 - pow(double(b2), t);
    coef[0] = static_cast<float>(*lr / bc1);  // step size
    coef[1] = static_cast<float>(sqrt(bc2));
  }
  __syncthreads();
  const float step_size = coef[0], sqrt_bc2 = coef[1];
  MS_CUDA_LOOP(i, n) {
    const float g = Decayed(grad[i], param[i], wd);
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
  }
}

__global__ void AdagradKernel(float* param, const float* grad, float* sum_sq, const float* lr,
                              int64_t n, float eps, float wd) {
  const float a = *lr;
  MS_CUDA_LOOP(i, n) {
    const float g = Decayed(grad[i], param[i], wd);
    const float s = sum_sq[i] + g * g;
    sum_sq[i] = s;
    param[i] -= a * g / (sqrtf(s) + eps);
  }
}

__global__ void RmspropKernel(float* param, const float* grad, float* sq_avg, const float* lr,
                              int64_t n, float rho, float eps, float wd) {
  const float a = *lr;
  MS_CUDA_LOOP(i, n) {
    const float g = Decayed(grad[i], param[i], wd);
    const float s = rho * sq_avg[i] + (1.0f - rho) * g * g;
    sq_avg[i] = s;
    param[i] -= a * g / (sqrtf(s) + eps);
  }
}

}  // namespace

void SgdUpdate(Context* ctx, float* param, const float* grad, float* buf, const float* lr,
               const float* step, int64_t n, float momentum, float dampening,
               float weight_decay, bool nesterov) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  SgdKernel<<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(param, grad, buf, lr, step, n, momentum,
                                                         dampening, weight_decay, nesterov);
  MS_CUDA_LAUNCH_CHECK("SgdKernel");
}

void AdamUpdate(Context* ctx, float* param, const float* grad, float* m, float* v,
                const float* lr, const float* step, int64_t n, float beta1, float beta2,
                float eps, float weight_decay) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  AdamKernel<<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(param, grad, m, v, lr, step, n, beta1,
                                                          beta2, eps, weight_decay);
  MS_CUDA_LAUNCH_CHECK("AdamKernel");
}

void AdagradUpdate(Context* ctx, float* param, const float* grad, float* sum_sq,
                   const float* lr, int64_t n, float eps, float weight_decay) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  AdagradKernel<<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(param, grad, sum_sq, lr, n, eps,
                                                             weight_decay);
  MS_CUDA_LAUNCH_CHECK("AdagradKernel");
}

void RmspropUpdate(Context* ctx, float* param, const float* grad, float* sq_avg,
                   const float* lr, int64_t n, float rho, float eps, float weight_decay) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  RmspropKernel<<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(param, grad, sq_avg, lr, n, rho, eps,
                                                             weight_decay);
  MS_CUDA_LAUNCH_CHECK("RmspropKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
