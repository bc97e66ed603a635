// Random family: fills a tensor from the counter-based Philox stream (kernels/philox.h).
// Element i of a call uses counter value `offset + i` of stream `seed`; the op reserves the
// counter range with ctx->TakeRng(n) inside its Exec closure.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {
namespace kernels {
namespace cpu {
// out[i] = low + (high - low) * u, u uniform in [0, 1) on a 2^-24 grid; dt float32/float16.
void Uniform(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
             float low, float high);
// out[i] = mean + std * z, z standard normal by Box-Muller; dt float32/float16.
void Gaussian(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std);
// out[i] = 1 if the 32-bit output r < threshold else 0 (see philox::BernoulliThreshold);
// dt float32/float16/int32.
void Bernoulli(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold);
}  // namespace cpu
namespace cuda {
void Uniform(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
             float low, float high);
void Gaussian(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std);
void Bernoulli(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold);
}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
