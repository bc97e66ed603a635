// Batch normalisation for x of shape (N, C) or (N, C, H, W) (any (N, C, *spatial)), float32
// or float16, with per-channel scale, bias and running statistics of shape (C,), float32 or
// float16. y and dx take x's dtype, dscale and dbias scale's; the saved statistics are float32.
#pragma once

#include <optional>
#include <tuple>
#include <vector>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// Normalises with the batch statistics (biased variance) and returns
// (y, saved_mean, saved_inv_std), saved_inv_std = 1 / sqrt(var + eps). Updates running_mean
// and running_var IN PLACE as r = (1 - momentum) * r + momentum * batch_stat, using the
// UNBIASED batch variance for running_var (PyTorch's convention); needs N * H * W > 1.
// Fusions, in the same pass over the activations: `residual` (x's shape and dtype) is added
// to the result, then `relu` applies max(y, 0): relu(batchnorm(x) + residual), the same values
// as the three ops in turn.
std::tuple<Tensor, Tensor, Tensor> BatchNormForwardTraining(
    const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& running_mean,
    const Tensor& running_var, double momentum, double eps, bool relu = false,
    const std::optional<Tensor>& residual = {});
// y = (x - running_mean) / sqrt(running_var + eps) * scale + bias (+ residual, then
// max(y, 0)).
Tensor BatchNormForwardInference(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var,
                                 double eps, bool relu = false,
                                 const std::optional<Tensor>& residual = {});
// Returns [dx, dscale, dbias] for the training forward, from its saved statistics; `y`, the
// forward's output, where it fused a ReLU (the gradient flows where y > 0). With `residual`
// (the forward fused one), [dx, dscale, dbias, dresidual].
std::vector<Tensor> BatchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                      const Tensor& saved_mean, const Tensor& saved_inv_std,
                                      const std::optional<Tensor>& y = {},
                                      bool residual = false);

}  // namespace ops
}  // namespace minisinga
