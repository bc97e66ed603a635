// CPU batch norm (optionally with a residual add and a ReLU fused into the forward, and their
// gradients into the backward): one OpenMP work item per channel; per-channel sums in double
// (two passes: mean, then squared deviations) so large batches keep float32 accuracy. One
// template per kernel on the activation type T (float, half_t) and the per-channel type P
// (float, half_t): values are loaded and stored through Cvt<T> and Cvt<P> (the sums read
// float16 rows widened to float, kChunk values at a time; per-channel values are loaded once
// per channel, results rounded to float first as in the float32 kernel, then to P), and the
// arithmetic is the same for all.
#include "kernels/batchnorm.h"

#include <algorithm>
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

// Sum over the channel's N rows of S contiguous values of f(a[k], b[k]) (f(a[k], a[k])
// without b), the values read as floats kChunk at a time; with `mask`, a[k] counts only
// where mask[k] > 0 (ReluMask).
template <typename T, typename F>
double ChannelSum(int64_t n, int64_t c, int64_t s, int64_t ch, F f, const T* a,
                  const T* b = nullptr, const T* mask = nullptr) {
  float abuf[kChunk], bbuf[kChunk], mbuf[kChunk];
  double acc = 0;
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * c + ch) * s;
    double row = 0;
    for (int64_t j0 = 0; j0 < s; j0 += kChunk) {
      const int64_t len = std::min(kChunk, s - j0);
      const float* av = AsFloat(a + base + j0, len, abuf);
      if (mask) {
        const float* mv = AsFloat(mask + base + j0, len, mbuf);
        for (int64_t j = 0; j < len; j++) abuf[j] = ReluMask(av[j], mv[j]);
        av = abuf;
      }
      const float* bv = b ? AsFloat(b + base + j0, len, bbuf) : av;
      for (int64_t j = 0; j < len; j++) row += f(av[j], bv[j]);
    }
    acc += row;
  }
  return acc;
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
    const double mean = ChannelSum(n, c, s, ch, [](float v, float) { return double(v); }, x) / m;
    const double ssd = ChannelSum(
        n, c, s, ch,
        [&](float v, float) {
          const double d = double(v) - mean;
          return d * d;
        },
        x);
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
    const float mf = static_cast<float>(mean);
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
    const double mean = saved_mean[ch], inv_std = saved_inv_std[ch];
    // With xhat = (x - mean) * inv_std: dbias = sum(dy), dscale = sum(dy * xhat),
    // dx = scale * inv_std / M * (M * dy - dbias - xhat * dscale).
    // (dy masked by y > 0 where the forward fused a ReLU)
    const T* none = nullptr;
    const double db =
        ChannelSum(n, c, s, ch, [](float g, float) { return double(g); }, dy, none, y);
    const double ds = ChannelSum(
        n, c, s, ch,
        [&](float g, float v) { return double(g) * ((double(v) - mean) * inv_std); }, dy, x, y);
    dbias[ch] = Cvt<P>::Store(static_cast<float>(db));
    dscale[ch] = Cvt<P>::Store(static_cast<float>(ds));
    const double k = double(Cvt<P>::Load(scale[ch])) * inv_std / double(m);
    // dx = dy * p + (x - mean) * q + r in float (BatchNormDx), expanding the formula above.
    const float mf = saved_mean[ch];
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
