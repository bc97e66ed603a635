// Select family: which entries of a float32 vector a sparse all-reduce sends (its top-k and
// threshold modes). Magnitudes compare as |v|; NaN entries are never selected (they rank as 0).
// Both functions wait for the device: their results size the op's output.
//
// KthLargestAbs: the k-th largest |v[i]| (1 <= k <= n).
// SelectAbs: writes to idx, in increasing order, every i with |v[i]| > t, and of those with
//   |v[i]| == t the first ones (in index order) while the total stays within `limit`; returns
//   how many it wrote (idx holds n entries).
#pragma once

#include <cstdint>

#include "core/device.h"

namespace minisinga {
namespace kernels {
namespace cpu {
float KthLargestAbs(Context* ctx, const float* v, int64_t n, int64_t k);
int64_t SelectAbs(Context* ctx, const float* v, int64_t n, float t, int64_t limit,
                  int32_t* idx);
}  // namespace cpu
namespace cuda {
float KthLargestAbs(Context* ctx, const float* v, int64_t n, int64_t k);
int64_t SelectAbs(Context* ctx, const float* v, int64_t n, float t, int64_t limit,
                  int32_t* idx);
}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
