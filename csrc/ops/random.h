// Random fills (in place) from the device's counter-based Philox stream.
// Each op reserves its counter range with ctx->TakeRng(numel) inside the Exec closure, so a
// recorded graph draws fresh numbers on every replay, and the same (seed, offset) gives the
// same numbers on every device and for any number of threads.
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// t <- uniform in [low, high) (rounding to the output dtype may give high); float32 or float16.
void Uniform(const Tensor& t, double low, double high);
// t <- normal(mean, std) by Box-Muller; float32 or float16; std >= 0.
void Gaussian(const Tensor& t, double mean, double std);
// t <- 1 with probability p else 0; float32, float16 or int32; 0 <= p <= 1.
void Bernoulli(const Tensor& t, double p);

// The raw Philox4x32-10 bijection, for known-answer tests.
std::array<uint32_t, 4> Philox4x32_10(const std::array<uint32_t, 4>& counter,
                                      const std::array<uint32_t, 2>& key);

}  // namespace ops
}  // namespace minisinga
