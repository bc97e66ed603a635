// CPU fused optimizer updates: one flat OpenMP loop each; lr and step are read once.
#include "kernels/optim.h"

#include <cmath>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {
// g + wd * param, skipped when wd == 0 as PyTorch does (so an inf param gives no NaN).
inline float Decayed(float g, float p, float wd) { return wd != 0.0f ? g + wd * p : g; }
}  // namespace

void SgdUpdate(Context*, float* param, const float* grad, float* buf, const float* lr,
               const float* step, int64_t n, float momentum, float dampening,
               float weight_decay, bool nesterov) {
  const float a = *lr, wd = weight_decay;
  if (buf == nullptr) {
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
    for (int64_t i = 0; i < n; i++) param[i] -= a * Decayed(grad[i], param[i], wd);
    return;
  }
  const bool first = step != nullptr && *step <= 1.0f;
  // buf = mb * buf + gb * g covers both the first step (0, 1) and later ones.
  const float mb = first ? 0.0f : momentum, gb = first ? 1.0f : 1.0f - dampening;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float g = Decayed(grad[i], param[i], wd);
    const float b = mb * buf[i] + gb * g;
    buf[i] = b;
    param[i] -= a * (nesterov ? g + momentum * b : b);
  }
}

void AdamUpdate(Context*, float* param, const float* grad, float* m, float* v, const float* lr,
                const float* step, int64_t n, float beta1, float beta2, float eps,
                float weight_decay) {
  const double t = *step;
  const double bc1 = 1.0 - std::pow(double(beta1), t), bc2 = 1.0 - std::pow(double(beta2), t);
  const float step_size = static_cast<float>(*lr / bc1);
  const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  const float b1 = beta1, b2 = beta2, wd = weight_decay;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float g = Decayed(grad[i], param[i], wd);
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
}

void AdagradUpdate(Context*, float* param, const float* grad, float* sum_sq, const float* lr,
                   int64_t n, float eps, float weight_decay) {
  const float a = *lr, wd = weight_decay;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float g = Decayed(grad[i], param[i], wd);
    const float s = sum_sq[i] + g * g;
    sum_sq[i] = s;
    param[i] -= a * g / (std::sqrt(s) + eps);
  }
}

void RmspropUpdate(Context*, float* param, const float* grad, float* sq_avg, const float* lr,
                   int64_t n, float rho, float eps, float weight_decay) {
  const float a = *lr, wd = weight_decay;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float g = Decayed(grad[i], param[i], wd);
    const float s = rho * sq_avg[i] + (1.0f - rho) * g * g;
    sq_avg[i] = s;
    param[i] -= a * g / (std::sqrt(s) + eps);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
