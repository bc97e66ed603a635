// Optim family: fused, in-place parameter updates (PyTorch's formulas), float32, one pass
// over the parameter. The learning rate `lr` and Adam's `step` are pointers to 1-element
// device tensors read inside the kernel, so a recorded graph sees their current values.
// Every update first forms g = grad + weight_decay * param (L2 decay).
#pragma once

#include <cstdint>

#include "core/device.h"

namespace minisinga {
namespace kernels {
namespace cpu {
// With momentum != 0 (buf non-null): buf = first ? g : momentum * buf + (1 - dampening) * g,
// where first = (step != nullptr && *step <= 1); nesterov: g += momentum * buf, else g = buf.
// Then param -= lr * g.
void SgdUpdate(Context* ctx, float* param, const float* grad, float* buf, const float* lr,
               const float* step, int64_t n, float momentum, float dampening,
               float weight_decay, bool nesterov);
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = *step (>= 1).
void AdamUpdate(Context* ctx, float* param, const float* grad, float* m, float* v,
                const float* lr, const float* step, int64_t n, float beta1, float beta2,
                float eps, float weight_decay);
// sum_sq += g^2; param -= lr * g / (sqrt(sum_sq) + eps).
void AdagradUpdate(Context* ctx, float* param, const float* grad, float* sum_sq,
                   const float* lr, int64_t n, float eps, float weight_decay);
// sq_avg = rho sq_avg + (1 - rho) g^2; param -= lr * g / (sqrt(sq_avg) + eps).
void RmspropUpdate(Context* ctx, float* param, const float* grad, float* sq_avg,
                   const float* lr, int64_t n, float rho, float eps, float weight_decay);
}  // namespace cpu
namespace cuda {
void SgdUpdate(Context* ctx, float* param, const float* grad, float* buf, const float* lr,
               const float* step, int64_t n, float momentum, float dampening,
               float weight_decay, bool nesterov);
void AdamUpdate(Context* ctx, float* param, const float* grad, float* m, float* v,
                const float* lr, const float* step, int64_t n, float beta1, float beta2,
                float eps, float weight_decay);
void AdagradUpdate(Context* ctx, float* param, const float* grad, float* sum_sq,
                   const float* lr, int64_t n, float eps, float weight_decay);
void RmspropUpdate(Context* ctx, float* param, const float* grad, float* sq_avg,
                   const float* lr, int64_t n, float rho, float eps, float weight_decay);
}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
