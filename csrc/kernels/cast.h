// Cast family: elementwise conversion between float32, float16 and int32.
// Semantics (the same on every device, helpers below are MS_HD):
//   float -> float16: IEEE round to nearest even, overflow to +-inf (Cvt<half_t>).
//   int32 -> float32: round to nearest even; int32 -> float16: via float32, which is exact
//     for |x| < 2^24, so one correct rounding (beyond 65519 the result is +-inf).
//   float -> int32: truncation toward zero like numpy's astype for values in range; values
//     are clamped explicitly: NaN -> 0, >= 2^31 (and +inf) -> INT32_MAX,
//     <= -2^31 (and -inf) -> INT32_MIN. (numpy leaves these platform-defined.)
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {
namespace cast {

MS_HD int32_t SaturateToInt32(double v) {
  if (v != v) return 0;
  if (v >= 2147483647.0) return 2147483647;
  if (v <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int32_t>(v);  // in range: truncates toward zero, no UB
}

// Every source loads as a double (exact for all three types); stores round once.
MS_HD double Load(float v) { return v; }
MS_HD double Load(half_t v) { return HalfToFloat(v.bits); }
MS_HD double Load(int32_t v) { return v; }

template <typename D>
struct Store;
template <>
struct Store<float> {
  static MS_HD float Do(double v) { return static_cast<float>(v); }
};
template <>
struct Store<half_t> {  // every source is exactly a float32 value first (see above)
  static MS_HD half_t Do(double v) { return half_t{FloatToHalf(static_cast<float>(v))}; }
};
template <>
struct Store<int32_t> {
  static MS_HD int32_t Do(double v) { return SaturateToInt32(v); }
};

}  // namespace cast

namespace kernels {
namespace cpu {
// y[i] = x[i] converted from `src` to `dst` (n elements, no overlap).
void Cast(Context* ctx, DType src, DType dst, const void* x, void* y, int64_t n);
}  // namespace cpu
namespace cuda {
void Cast(Context* ctx, DType src, DType dst, const void* x, void* y, int64_t n);
}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
