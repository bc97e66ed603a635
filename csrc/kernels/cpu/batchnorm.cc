// CPU batch norm (optionally with a residual add and a ReLU fused into the forward, and their
// gradients into the backward): one OpenMP work item per channel; per-channel sums in two
// passes (the mean, then squared deviations), each summed kChunk values at a time in float
// lanes (vectorised) and the chunks' sums added in double, so large batches keep float32
// accuracy. One template per kernel on the activation type T (float, half_t) and the
// per-channel type P (float, half_t): values are loaded and stored through Cvt<T> and Cvt<P>
// (the sums read float16 rows widened to float, kChunk values at a time; per-channel values
// are loaded once per channel, results rounded to float first as in the float32 kernel, then
// to P), and the arithmetic is the same for all.
#include "kernels/batchnorm.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kChunk = 1024;

// v[0, len) as floats: v itself, or half_t values widened into buf by a loop of their own
// (vectorised, unlike loads inside the scalar sums below).
const float* AsFloat(const float* v, int64_t, float*) { return v; }
const float* AsFloat(const half_t* v, int64_t len, float* buf) {
  for (int64_t j = 0; j < len; j++) buf[j] = Cvt<half_t>::Load(v[j]);
  return buf;
}

// Adds to sums[0] the sum of f(a[j], b[j]) over j < len and, with kPlain, to sums[1] the sum
// of a[j]: kLanes float accumulators each (independent, so GCC vectorises the loop without
// reassociating a sum), their totals and the tail in double.
constexpr int kLanes = 32;
template <bool kPlain, typename F>
void ChunkSum(const float* a, const float* b, int64_t len, F f, double* sums) {
  float lf[kLanes] = {}, la[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int l = 0; l < kLanes; l++) {
      lf[l] += f(a[j + l], b[j + l]);
      if (kPlain) la[l] += a[j + l];
    }
  }
  for (; j < len; j++) {
    sums[0] += f(a[j], b[j]);
    if (kPlain) sums[1] += a[j];
  }
  for (int l = 0; l < kLanes; l++) {
    sums[0] += lf[l];
    if (kPlain) sums[1] += la[l];
  }
}

// Over the channel's N rows of S contiguous values: sums[0] = the sum of f(a[k], b[k])
// (f(a[k], a[k]) without b) and, with kPlain, sums[1] = the sum of a[k]; the values read as
// floats kChunk at a time; with `mask`, a[k] counts only where mask[k] > 0 (ReluMask).
template <bool kPlain = false, typename T, typename F>
std::array<double, 2> ChannelSums(int64_t n, int64_t c, int64_t s, int64_t ch, F f, const T* a,
                                  const T* b = nullptr, const T* mask = nullptr) {
  float abuf[kChunk], bbuf[kChunk], mbuf[kChunk];
  std::array<double, 2> sums{};
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * c + ch) * s;
    for (int64_t j0 = 0; j0 < s; j0 += kChunk) {
      const int64_t len = std::min(kChunk, s - j0);
      const float* av = AsFloat(a + base + j0, len, abuf);
      if (mask) {
        const float* mv = AsFloat(mask + base + j0, len, mbuf);
        for (int64_t j = 0; j < len; j++) abuf[j] = ReluMask(av[j], mv[j]);
        av = abuf;
      }
      const float* bv = b ? AsFloat(b + base + j0, len, bbuf) : av;
      ChunkSum<kPlain>(av, bv, len, f, sums.data());
    }
  }
  return sums;
}

// The elementwise passes, one row of S values per call. Not inlined: compiled on their own,
// GCC vectorises them for half_t too (inlined into the OpenMP loops, it did not).

// y = (x - mean) * a + b (+ res, then max(y, 0)).
template <bool kRelu, bool kRes, typename T>
[[gnu::noinline]] void ApplyRow(const T* x, const T* res, T* y, int64_t s, float mean, float a,
                                float b) {
  for (int64_t j = 0; j < s; j++) {
    float v = BatchNormY(Cvt<T>::Load(x[j]), mean, a, b);
    if (kRes) v = Cvt<T>::Load(Cvt<T>::Store(v)) + Cvt<T>::Load(res[j]);
    y[j] = Cvt<T>::Store(BatchNormRelu(v, kRelu));
  }
}
template <typename T>
void ApplyRow(bool relu, const T* x, const T* res, T* y, int64_t s, float mean, float a,
              float b) {
  if (res)
    relu ? ApplyRow<true, true>(x, res, y, s, mean, a, b)
         : ApplyRow<false, true>(x, res, y, s, mean, a, b);
  else
    relu ? ApplyRow<true, false>(x, res, y, s, mean, a, b)
         : ApplyRow<false, false>(x, res, y, s, mean, a, b);
}

// dx = dy * p + (x - mean) * q + r, dy masked by y > 0 where the forward fused a ReLU; the
// (masked) dy also to dres where the forward fused a residual.
template <bool kMask, bool kRes, typename T>
[[gnu::noinline]] void GradRow(const T* dy, const T* x, const T* y, T* dx, T* dres, int64_t s,
                               float mean, float p, float q, float r) {
  for (int64_t j = 0; j < s; j++) {
    float g = Cvt<T>::Load(dy[j]);
    if (kMask) g = ReluMask(g, Cvt<T>::Load(y[j]));
    if (kRes) dres[j] = Cvt<T>::Store(g);
    dx[j] = Cvt<T>::Store(BatchNormDx(g, Cvt<T>::Load(x[j]), mean, p, q, r));
  }
}
template <typename T>
void GradRow(const T* dy, const T* x, const T* y, T* dx, T* dres, int64_t s, float mean,
             float p, float q, float r) {
  if (dres)
    y ? GradRow<true, true>(dy, x, y, dx, dres, s, mean, p, q, r)
      : GradRow<false, true>(dy, x, y, dx, dres, s, mean, p, q, r);
  else
    y ? GradRow<true, false>(dy, x, y, dx, dres, s, mean, p, q, r)
      : GradRow<false, false>(dy, x, y, dx, dres, s, mean, p, q, r);
}

template <typename T, typename P>
void TrainingT(const T* x, const P* scale, const P* bias, P* running_mean, P* running_var, T* y,
               float* saved_mean, float* saved_inv_std, int64_t n, int64_t c, int64_t s,
               float momentum, float eps, bool relu, const T* res) {
  const int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > MS_OMP_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    // The mean from deviations from the channel's first value (exact in float where the values
    // are within a factor of 2 of it): the float lanes' rounding then scales with the spread,
    // not with the mean, and the mean rounds to float as an exact sum's would.
    const float x0 = Cvt<T>::Load(x[ch * s]);  // m > 1 (ops/batchnorm.cc)
    const double mean =
        x0 + ChannelSums(n, c, s, ch, [x0](float v, float) { return v - x0; }, x)[0] / m;
    // Deviations from the mean rounded to float, mf: they sum to ssd + m (mean - mf)^2, a
    // relative excess of at most (ulp(mean) / std)^2 / 4.
    const float mf = static_cast<float>(mean);
    const double ssd = ChannelSums(
        n, c, s, ch,
        [mf](float v, float) {
          const float d = v - mf;
          return d * d;
        },
        x)[0];
    const double var = ssd / m;
    const double inv_std = 1.0 / std::sqrt(var + double(eps));
    saved_mean[ch] = static_cast<float>(mean);
    saved_inv_std[ch] = static_cast<float>(inv_std);
    const double mom = momentum;
    const double rm = Cvt<P>::Load(running_mean[ch]), rv = Cvt<P>::Load(running_var[ch]);
    running_mean[ch] = Cvt<P>::Store(static_cast<float>((1 - mom) * rm + mom * mean));
    running_var[ch] = Cvt<P>::Store(static_cast<float>((1 - mom) * rv + mom * ssd / (m - 1)));
    // y = (x - mean) * a + bias, a = scale * inv_std; subtracting first keeps accuracy when
    // |mean| >> std.
    const float a = static_cast<float>(double(Cvt<P>::Load(scale[ch])) * inv_std);
    const float b = Cvt<P>::Load(bias[ch]);
    for (int64_t i = 0; i < n; i++) {
      const int64_t base = (i * c + ch) * s;
      ApplyRow(relu, x + base, res ? res + base : res, y + base, s, mf, a, b);
    }
  }
}

template <typename T, typename P>
void InferenceT(const T* x, const P* scale, const P* bias, const P* running_mean,
                const P* running_var, T* y, int64_t n, int64_t c, int64_t s, float eps,
                bool relu, const T* res) {
  const int64_t rows = n * c;
#pragma omp parallel for schedule(static) if (rows * s > MS_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t ch = r % c;
    const double inv_std = 1.0 / std::sqrt(double(Cvt<P>::Load(running_var[ch])) + double(eps));
    const float mf = Cvt<P>::Load(running_mean[ch]);
    const float a = static_cast<float>(double(Cvt<P>::Load(scale[ch])) * inv_std);
    ApplyRow(relu, x + r * s, res ? res + r * s : res, y + r * s, s, mf, a,
             Cvt<P>::Load(bias[ch]));
  }
}

template <typename T, typename P>
void BackwardT(const T* dy, const T* x, const T* y, const P* scale, const float* saved_mean,
               const float* saved_inv_std, T* dx, P* dscale, P* dbias, int64_t n, int64_t c,
               int64_t s, T* dres) {
  const int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > MS_OMP_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    const float mf = saved_mean[ch];
    const double inv_std = saved_inv_std[ch];
    // With xhat = (x - mean) * inv_std: dbias = sum(dy), dscale = sum(dy * xhat),
    // dx = scale * inv_std / M * (M * dy - dbias - xhat * dscale).
    // (dy masked by y > 0 where the forward fused a ReLU)
    // One pass: sums[0] = sum(dy * (x - mean)), sums[1] = sum(dy).
    const auto sums = ChannelSums<true>(
        n, c, s, ch, [mf](float g, float v) { return g * (v - mf); }, dy, x, y);
    const double db = sums[1], ds = sums[0] * inv_std;
    dbias[ch] = Cvt<P>::Store(static_cast<float>(db));
    dscale[ch] = Cvt<P>::Store(static_cast<float>(ds));
    const double k = double(Cvt<P>::Load(scale[ch])) * inv_std / double(m);
    // dx = dy * p + (x - mean) * q + r in float (BatchNormDx), expanding the formula above.
    const float p = static_cast<float>(k * m);
    const float q = static_cast<float>(-k * ds * inv_std);
    const float r = static_cast<float>(-k * db);
    for (int64_t i = 0; i < n; i++) {
      const int64_t base = (i * c + ch) * s;
      GradRow(dy + base, x + base, y ? y + base : y, dx + base, dres ? dres + base : dres, s,
              mf, p, q, r);
    }
  }
}

}  // namespace

#define MS_BATCHNORM_CPU(T, P)                                                                \
  void BatchNormForwardTraining(Context*, const T* x, const P* scale, const P* bias,          \
                                P* running_mean, P* running_var, T* y, float* saved_mean,     \
                                float* saved_inv_std, int64_t n, int64_t c, int64_t s,        \
                                float momentum, float eps, bool relu, const T* residual) {    \
    TrainingT(x, scale, bias, running_mean, running_var, y, saved_mean, saved_inv_std, n, c,  \
              s, momentum, eps, relu, residual);                                              \
  }                                                                                           \
  void BatchNormForwardInference(Context*, const T* x, const P* scale, const P* bias,         \
                                 const P* running_mean, const P* running_var, T* y,           \
                                 int64_t n, int64_t c, int64_t s, float eps, bool relu,       \
                                 const T* residual) {                                         \
    InferenceT(x, scale, bias, running_mean, running_var, y, n, c, s, eps, relu, residual);   \
  }                                                                                           \
  void BatchNormBackward(Context*, const T* dy, const T* x, const T* y, const P* scale,       \
                         const float* saved_mean, const float* saved_inv_std, T* dx,          \
                         P* dscale, P* dbias, int64_t n, int64_t c, int64_t s,                \
                         T* dresidual) {                                                      \
    BackwardT(dy, x, y, scale, saved_mean, saved_inv_std, dx, dscale, dbias, n, c, s,         \
              dresidual);                                                                     \
  }

MS_BATCHNORM_CPU(float, float)
MS_BATCHNORM_CPU(half_t, float)
MS_BATCHNORM_CPU(half_t, half_t)
#undef MS_BATCHNORM_CPU

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
