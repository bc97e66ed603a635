// Fused in-place optimizer updates (PyTorch's SGD, Adam, Adagrad, RMSprop) on float32 or
// float16 tensors, computed in float32: param, grad and every state tensor in one dtype are
// updated in it directly (float16: each result rounded once); mixed float32 / float16 ones
// through float32 copies. Either way float16 results equal the float32 update on the same
// values, rounded once to float16.
// param, grad and every state tensor must have the same shape and device. `lr` and `step`
// are 1-element float32 tensors on the same device, read when the update runs, so a
// recorded graph sees the values they hold at each replay. Weight decay is L2: the update
// uses g = grad + weight_decay * param.
// `hyper` (optional, each op's last argument): a float32 tensor on param's device holding the
// op's float settings in their argument order (SGD: momentum, dampening, weight_decay; Adam:
// beta1, beta2, eps, weight_decay; Adagrad: eps, weight_decay; RMSprop: rho, eps,
// weight_decay), read when the update runs instead of those numbers, as lr is: the values a
// schedule computes at each step. The numbers are still checked, and SGD's momentum number
// still decides whether the momentum buffer is used.
#pragma once

#include <optional>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// SGD with optional momentum (PyTorch semantics). With momentum != 0, momentum_buf is
// required and updated: buf = momentum * buf + (1 - dampening) * g, except that on the
// first step buf = g. The first step is recognised from `step` (the optimizer's 1-element
// step tensor, first step when step <= 1); without `step` the caller must start buf at zero,
// which reproduces PyTorch exactly when dampening == 0 (the default). Nesterov:
// g = g + momentum * buf, else g = buf. Then param -= lr * g. With momentum == 0 the buffer
// and step are ignored.
void SgdUpdate(const Tensor& param, const Tensor& grad, const Tensor& lr,
               std::optional<Tensor> momentum_buf, double momentum, double dampening,
               double weight_decay, bool nesterov, std::optional<Tensor> step,
               std::optional<Tensor> hyper = std::nullopt);
// Adam (no amsgrad) with bias correction by `step` (must hold t >= 1, counting this update).
void AdamUpdate(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const Tensor& lr, const Tensor& step, double beta1, double beta2, double eps,
                double weight_decay, std::optional<Tensor> hyper = std::nullopt);
// Adagrad (no lr decay): sum_sq += g^2; param -= lr * g / (sqrt(sum_sq) + eps).
void AdagradUpdate(const Tensor& param, const Tensor& grad, const Tensor& sum_sq,
                   const Tensor& lr, double eps, double weight_decay,
                   std::optional<Tensor> hyper = std::nullopt);
// RMSprop (no momentum, not centred): sq_avg = rho sq_avg + (1 - rho) g^2;
// param -= lr * g / (sqrt(sq_avg) + eps).
void RmspropUpdate(const Tensor& param, const Tensor& grad, const Tensor& sq_avg,
                   const Tensor& lr, double rho, double eps, double weight_decay,
                   std::optional<Tensor> hyper = std::nullopt);

}  // namespace ops
}  // namespace minisinga
