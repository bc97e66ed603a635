// CPU sparse selection: nth_element for the k-th magnitude, one ordered pass to select.
#include "kernels/select.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {
inline float Mag(float x) { return std::isnan(x) ? 0.0f : std::fabs(x); }
}  // namespace

float KthLargestAbs(Context*, const float* v, int64_t n, int64_t k) {
  std::vector<float> mag(v, v + n);
  for (float& m : mag) m = Mag(m);
  std::nth_element(mag.begin(), mag.begin() + (k - 1), mag.end(), std::greater<float>());
  return mag[k - 1];
}

int64_t SelectAbs(Context*, const float* v, int64_t n, float t, int64_t limit, int32_t* idx) {
  int64_t above = 0;
  for (int64_t i = 0; i < n; i++) above += Mag(v[i]) > t;
  int64_t ties = limit - above, count = 0;
  for (int64_t i = 0; i < n; i++) {
    const float m = Mag(v[i]);
    if (m > t || (m == t && ties-- > 0)) idx[count++] = static_cast<int32_t>(i);
  }
  return count;
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
