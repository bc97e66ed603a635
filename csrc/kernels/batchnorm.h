// Batch normalisation over (N, C, S) data: N samples, C channels, S spatial positions per
// channel (S = H * W for NCHW, 1 for (N, C)); float32, statistics per channel.
#pragma once

#include <cstdint>

#include "core/device.h"

namespace minisinga {
namespace kernels {
namespace cpu {
// y = (x - mean) * inv_std * scale + bias with the batch mean and biased variance;
// saved_mean/saved_inv_std = mean, 1 / sqrt(var + eps) per channel; running stats updated in
// place: r = (1 - momentum) * r + momentum * stat, running_var with the unbiased variance
// var * M / (M - 1), M = N * S > 1.
void BatchNormForwardTraining(Context* ctx, const float* x, const float* scale,
                              const float* bias, float* running_mean, float* running_var,
                              float* y, float* saved_mean, float* saved_inv_std, int64_t n,
                              int64_t c, int64_t s, float momentum, float eps);
// y = (x - running_mean) / sqrt(running_var + eps) * scale + bias.
void BatchNormForwardInference(Context* ctx, const float* x, const float* scale,
                               const float* bias, const float* running_mean,
                               const float* running_var, float* y, int64_t n, int64_t c,
                               int64_t s, float eps);
// Gradients of the training forward with respect to x, scale and bias.
void BatchNormBackward(Context* ctx, const float* dy, const float* x, const float* scale,
                       const float* saved_mean, const float* saved_inv_std, float* dx,
                       float* dscale, float* dbias, int64_t n, int64_t c, int64_t s);
}  // namespace cpu
namespace cuda {
void BatchNormForwardTraining(Context* ctx, const float* x, const float* scale,
                              const float* bias, float* running_mean, float* running_var,
                              float* y, float* saved_mean, float* saved_inv_std, int64_t n,
                              int64_t c, int64_t s, float momentum, float eps);
void BatchNormForwardInference(Context* ctx, const float* x, const float* scale,
                               const float* bias, const float* running_mean,
                               const float* running_var, float* y, int64_t n, int64_t c,
                               int64_t s, float eps);
void BatchNormBackward(Context* ctx, const float* dy, const float* x, const float* scale,
                       const float* saved_mean, const float* saved_inv_std, float* dx,
                       float* dscale, float* dbias, int64_t n, int64_t c, int64_t s);
}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
