// CUDA fused optimizer updates: one grid-stride loop each, with the CPU's formulas. The
// learning rate and step live in device memory and are read by the kernels, so a recorded
// (or captured) graph sees their current values. Adam's bias corrections are computed once
// per block, in double as on the CPU. The kernels are templates on the element type T of param
// and grad (float, half_t) and S of the states: loads and stores go through cudak::DCvt, the
// arithmetic is the same for all (kernels/optim.h).
#include <cstdint>

#include "kernels/cuda/util.cuh"
#include "kernels/optim.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;

template <typename T, typename S>
__global__ void SgdKernel(T* param, const T* grad, S* buf, const float* lr, const float* step,
                          int64_t n, float momentum, float dampening, float wd, bool nesterov,
                          const float* hyper) {
  const float a = *lr;
  momentum = OptimHyper(hyper, 0, momentum);
  dampening = OptimHyper(hyper, 1, dampening);
  wd = OptimHyper(hyper, 2, wd);
  if (buf == nullptr) {
    MS_CUDA_LOOP(i, n) {
      const float p = DCvt<T>::Load(param[i]);
      param[i] = DCvt<T>::Store(p - a * OptimDecayed(DCvt<T>::Load(grad[i]), p, wd));
    }
    return;
  }
  const bool first = step != nullptr && *step <= 1.0f;
  // buf = mb * buf + gb * g covers both the first step (0, 1) and later ones.
  const float mb = first ? 0.0f : momentum, gb = first ? 1.0f : 1.0f - dampening;
  MS_CUDA_LOOP(i, n) {
    const float p = DCvt<T>::Load(param[i]);
    const float g = OptimDecayed(DCvt<T>::Load(grad[i]), p, wd);
    const float b = OptimState(mb, DCvt<S>::Load(buf[i]), gb * g);
    buf[i] = DCvt<S>::Store(b);
    param[i] = DCvt<T>::Store(p - a * (nesterov ? g + momentum * b : b));
  }
}

template <typename T, typename S>
__global__ void AdamKernel(T* param, const T* grad, S* m, S* v, const float* lr,
                           const float* step, int64_t n, float b1, float b2, float eps,
                           float wd, const float* hyper) {
  b1 = OptimHyper(hyper, 0, b1);
  b2 = OptimHyper(hyper, 1, b2);
  eps = OptimHyper(hyper, 2, eps);
  wd = OptimHyper(hyper, 3, wd);
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
    const float p = DCvt<T>::Load(param[i]);
    const float g = OptimDecayed(DCvt<T>::Load(grad[i]), p, wd);
    const float mi = OptimState(b1, DCvt<S>::Load(m[i]), (1.0f - b1) * g);
    const float vi = OptimState(b2, DCvt<S>::Load(v[i]), (1.0f - b2) * g * g);
    m[i] = DCvt<S>::Store(mi);
    v[i] = DCvt<S>::Store(vi);
    param[i] = DCvt<T>::Store(p - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps));
  }
}

template <typename T, typename S>
__global__ void AdagradKernel(T* param, const T* grad, S* sum_sq, const float* lr, int64_t n,
                              float eps, float wd, const float* hyper) {
  const float a = *lr;
  eps = OptimHyper(hyper, 0, eps);
  wd = OptimHyper(hyper, 1, wd);
  MS_CUDA_LOOP(i, n) {
    const float p = DCvt<T>::Load(param[i]);
    const float g = OptimDecayed(DCvt<T>::Load(grad[i]), p, wd);
    const float s = DCvt<S>::Load(sum_sq[i]) + g * g;
    sum_sq[i] = DCvt<S>::Store(s);
    param[i] = DCvt<T>::Store(p - a * g / (sqrtf(s) + eps));
  }
}

template <typename T, typename S>
__global__ void RmspropKernel(T* param, const T* grad, S* sq_avg, const float* lr, int64_t n,
                              float rho, float eps, float wd, const float* hyper) {
  const float a = *lr;
  rho = OptimHyper(hyper, 0, rho);
  eps = OptimHyper(hyper, 1, eps);
  wd = OptimHyper(hyper, 2, wd);
  MS_CUDA_LOOP(i, n) {
    const float p = DCvt<T>::Load(param[i]);
    const float g = OptimDecayed(DCvt<T>::Load(grad[i]), p, wd);
    const float s = OptimState(rho, DCvt<S>::Load(sq_avg[i]), (1.0f - rho) * g * g);
    sq_avg[i] = DCvt<S>::Store(s);
    param[i] = DCvt<T>::Store(p - a * g / (sqrtf(s) + eps));
  }
}

template <typename T, typename S>
void Sgd(Context* ctx, T* param, const T* grad, S* buf, const float* lr, const float* step,
         int64_t n, float momentum, float dampening, float weight_decay, bool nesterov,
         const float* hyper) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  SgdKernel<T, S><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(
      param, grad, buf, lr, step, n, momentum, dampening, weight_decay, nesterov, hyper);
  MS_CUDA_LAUNCH_CHECK("SgdKernel");
}

template <typename T, typename S>
void Adam(Context* ctx, T* param, const T* grad, S* m, S* v, const float* lr,
          const float* step, int64_t n, float beta1, float beta2, float eps,
          float weight_decay, const float* hyper) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  AdamKernel<T, S><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(
      param, grad, m, v, lr, step, n, beta1, beta2, eps, weight_decay, hyper);
  MS_CUDA_LAUNCH_CHECK("AdamKernel");
}

template <typename T, typename S>
void Adagrad(Context* ctx, T* param, const T* grad, S* sum_sq, const float* lr, int64_t n,
             float eps, float weight_decay, const float* hyper) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  AdagradKernel<T, S><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(
      param, grad, sum_sq, lr, n, eps, weight_decay, hyper);
  MS_CUDA_LAUNCH_CHECK("AdagradKernel");
}

template <typename T, typename S>
void Rmsprop(Context* ctx, T* param, const T* grad, S* sq_avg, const float* lr, int64_t n,
             float rho, float eps, float weight_decay, const float* hyper) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  RmspropKernel<T, S><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(
      param, grad, sq_avg, lr, n, rho, eps, weight_decay, hyper);
  MS_CUDA_LAUNCH_CHECK("RmspropKernel");
}

}  // namespace

// The overloads of kernels/optim.h: (T, S) = (float, float), (half_t, half_t), (half_t, float).
#define MS_OPTIM_OVERLOADS(T, S)                                                             \
  void SgdUpdate(Context* ctx, T* param, const T* grad, S* buf, const float* lr,             \
                 const float* step, int64_t n, float momentum, float dampening,              \
                 float weight_decay, bool nesterov, const float* hyper) {                    \
    Sgd(ctx, param, grad, buf, lr, step, n, momentum, dampening, weight_decay, nesterov,     \
        hyper);                                                                              \
  }                                                                                          \
  void AdamUpdate(Context* ctx, T* param, const T* grad, S* m, S* v, const float* lr,        \
                  const float* step, int64_t n, float beta1, float beta2, float eps,         \
                  float weight_decay, const float* hyper) {                                  \
    Adam(ctx, param, grad, m, v, lr, step, n, beta1, beta2, eps, weight_decay, hyper);       \
  }                                                                                          \
  void AdagradUpdate(Context* ctx, T* param, const T* grad, S* sum_sq, const float* lr,      \
                     int64_t n, float eps, float weight_decay, const float* hyper) {         \
    Adagrad(ctx, param, grad, sum_sq, lr, n, eps, weight_decay, hyper);                      \
  }                                                                                          \
  void RmspropUpdate(Context* ctx, T* param, const T* grad, S* sq_avg, const float* lr,      \
                     int64_t n, float rho, float eps, float weight_decay,                    \
                     const float* hyper) {                                                   \
    Rmsprop(ctx, param, grad, sq_avg, lr, n, rho, eps, weight_decay, hyper);                 \
  }
MS_OPTIM_OVERLOADS(float, float)
MS_OPTIM_OVERLOADS(half_t, half_t)
MS_OPTIM_OVERLOADS(half_t, float)
#undef MS_OPTIM_OVERLOADS

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
