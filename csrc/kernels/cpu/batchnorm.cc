// CPU batch norm: one OpenMP work item per channel; per-channel sums in double (two passes:
// mean, then squared deviations) so large batches keep float32 accuracy.
#include "kernels/batchnorm.h"

#include <cmath>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// Sum over the channel's N rows of S contiguous values.
template <typename F>
double ChannelSum(int64_t n, int64_t c, int64_t s, int64_t ch, F f) {
  double acc = 0;
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * c + ch) * s;
    double row = 0;
    for (int64_t j = 0; j < s; j++) row += f(base + j);
    acc += row;
  }
  return acc;
}

}  // namespace

void BatchNormForwardTraining(Context*, const float* x, const float* scale, const float* bias,
                              float* running_mean, float* running_var, float* y,
                              float* saved_mean, float* saved_inv_std, int64_t n, int64_t c,
                              int64_t s, float momentum, float eps) {
  const int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > MS_OMP_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    const double mean = ChannelSum(n, c, s, ch, [&](int64_t k) { return double(x[k]); }) / m;
    const double ssd = ChannelSum(n, c, s, ch, [&](int64_t k) {
      const double d = double(x[k]) - mean;
      return d * d;
    });
    const double var = ssd / m;
    const double inv_std = 1.0 / std::sqrt(var + double(eps));
    saved_mean[ch] = static_cast<float>(mean);
    saved_inv_std[ch] = static_cast<float>(inv_std);
    const double mom = momentum;
    running_mean[ch] = static_cast<float>((1 - mom) * running_mean[ch] + mom * mean);
    running_var[ch] = static_cast<float>((1 - mom) * running_var[ch] + mom * ssd / (m - 1));
    // y = (x - mean) * a + bias, a = scale * inv_std; subtracting first keeps accuracy when
    // |mean| >> std.
    const float mf = static_cast<float>(mean), a = static_cast<float>(scale[ch] * inv_std);
    const float b = bias[ch];
    for (int64_t i = 0; i < n; i++) {
      const float* xr = x + (i * c + ch) * s;
      float* yr = y + (i * c + ch) * s;
      for (int64_t j = 0; j < s; j++) yr[j] = (xr[j] - mf) * a + b;
    }
  }
}

void BatchNormForwardInference(Context*, const float* x, const float* scale, const float* bias,
                               const float* running_mean, const float* running_var, float* y,
                               int64_t n, int64_t c, int64_t s, float eps) {
  const int64_t rows = n * c;
#pragma omp parallel for schedule(static) if (rows * s > MS_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t ch = r % c;
    const double inv_std = 1.0 / std::sqrt(double(running_var[ch]) + double(eps));
    const float mf = running_mean[ch], a = static_cast<float>(scale[ch] * inv_std);
    const float b = bias[ch];
    const float* xr = x + r * s;
    float* yr = y + r * s;
    for (int64_t j = 0; j < s; j++) yr[j] = (xr[j] - mf) * a + b;
  }
}

void BatchNormBackward(Context*, const float* dy, const float* x, const float* scale,
                       const float* saved_mean, const float* saved_inv_std, float* dx,
                       float* dscale, float* dbias, int64_t n, int64_t c, int64_t s) {
  const int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > MS_OMP_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    const double mean = saved_mean[ch], inv_std = saved_inv_std[ch];
    // With xhat = (x - mean) * inv_std: dbias = sum(dy), dscale = sum(dy * xhat),
    // dx = scale * inv_std / M * (M * dy - dbias - xhat * dscale).
    const double db = ChannelSum(n, c, s, ch, [&](int64_t k) { return double(dy[k]); });
    const double ds = ChannelSum(n, c, s, ch, [&](int64_t k) {
      return double(dy[k]) * ((double(x[k]) - mean) * inv_std);
    });
    dbias[ch] = static_cast<float>(db);
    dscale[ch] = static_cast<float>(ds);
    const double k = double(scale[ch]) * inv_std / double(m);
    // dx = dy * p + (x - mean) * q + r in float, expanding the formula above.
    const float mf = saved_mean[ch];
    const float p = static_cast<float>(k * m);
    const float q = static_cast<float>(-k * ds * inv_std);
    const float r = static_cast<float>(-k * db);
    for (int64_t i = 0; i < n; i++) {
      const int64_t base = (i * c + ch) * s;
      for (int64_t j = 0; j < s; j++)
        dx[base + j] = dy[base + j] * p + (x[base + j] - mf) * q + r;
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
