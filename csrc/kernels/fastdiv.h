// Division by a divisor fixed at launch, as a multiply-high, an add and a shift, for the CUDA
// kernels' index arithmetic (a GPU has no integer divider: n / d costs tens of instructions).
// Granlund and Montgomery's round-up method: with s = ceil(log2 d) and
// m = floor(2^32 (2^s - d) / d) + 1, n / d == (mulhi(n, m) + n) >> s for 0 <= n < 2^31 and
// 1 <= d <= 2^31. tests/test_fastdiv.py checks the host path of this code against '/'.
#pragma once

#include <cstdint>

#include "core/dtype.h"  // MS_HD

namespace minisinga {

class FastDiv {
 public:
  FastDiv() = default;
  // d in [1, 2^31] (callers pass sizes that fit an int).
  explicit FastDiv(uint32_t d) : d_(d) {
    while ((uint64_t{1} << s_) < d) s_++;
    m_ = static_cast<uint32_t>((uint64_t{1} << 32) * ((uint64_t{1} << s_) - d) / d + 1);
  }
  // n / d for 0 <= n < 2^31.
  MS_HD uint32_t Div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(n, m_);
#else
    const uint32_t hi = static_cast<uint32_t>((uint64_t{n} * m_) >> 32);
#endif
    return (hi + n) >> s_;
  }
  // n % d for 0 <= n < 2^31.
  MS_HD uint32_t Mod(uint32_t n) const { return n - Div(n) * d_; }
  MS_HD uint32_t divisor() const { return d_; }

 private:
  uint32_t d_ = 1, m_ = 1, s_ = 0;
};

}  // namespace minisinga
