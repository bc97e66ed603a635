// Batch normalisation for x of shape (N, C) or (N, C, H, W) (any (N, C, *spatial)), float32
// or float16, with per-channel scale, bias and running statistics of shape (C,), float32 or
// float16. y and dx take x's dtype, dscale and dbias scale's; the saved statistics are float32.
#pragma once

#include <optional>
#include <tuple>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// Normalises with the batch statistics (biased variance) and returns
// (y, saved_mean, saved_inv_std), saved_inv_std = 1 / sqrt(var + eps). Updates running_mean
// and running_var IN PLACE as r = (1 - momentum) * r + momentum * batch_stat, using the
// UNBIASED batch variance for running_var (PyTorch's convention); needs N * H * W > 1.
// `relu` fuses a ReLU: y = max(y, 0) in the same pass (one pass over y fewer each way).
std::tuple<Tensor, Tensor, Tensor> BatchNormForwardTraining(
    const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& running_mean,
    const Tensor& running_var, double momentum, double eps, bool relu = false);
// y = (x - running_mean) / sqrt(running_var + eps) * scale + bias (then max(y, 0)).
Tensor BatchNormForwardInference(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var,
                                 double eps, bool relu = false);
// Returns (dx, dscale, dbias) for the training forward, from its saved statistics; `y`, the
// forward's output, where it fused a ReLU (the gradient flows where y > 0).
std::tuple<Tensor, Tensor, Tensor> BatchNormBackward(const Tensor& dy, const Tensor& x,
                                                     const Tensor& scale,
                                                     const Tensor& saved_mean,
                                                     const Tensor& saved_inv_std,
                                                     const std::optional<Tensor>& y = {});

}  // namespace ops
}  // namespace minisinga
