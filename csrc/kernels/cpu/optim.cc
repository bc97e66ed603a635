// CPU fused optimizer updates: one flat pass each, in rows of kRow elements spread over the
// OpenMP threads; lr and step are read once. One template per kernel on the element types T
// of param and grad and S of the states, with the same float arithmetic for all
// (kernels/optim.h): SGD's loops load and store through Cvt; Adam, Adagrad and RMSprop run
// float loops on rows widened first.
#include "kernels/optim.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kRow = 1024;  // 4 float rows fill 16 KiB

// row(i0, len) over [0, n) in rows of kRow elements, on all threads above MS_OMP_MIN.
template <typename F>
void ForRows(int64_t n, F row) {
  const int64_t rows = (n + kRow - 1) / kRow;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) row(r * kRow, std::min(kRow, n - r * kRow));
}

// SGD's rows. Not inlined (as in kernels/cpu/batchnorm.cc): GCC vectorises them, float16
// conversions included.

template <typename T>
[[gnu::noinline]] void SgdRow(T* param, const T* grad, int64_t len, float a, float wd) {
  for (int64_t i = 0; i < len; i++) {
    const float p = Cvt<T>::Load(param[i]);
    param[i] = Cvt<T>::Store(p - a * OptimDecayed(Cvt<T>::Load(grad[i]), p, wd));
  }
}

template <typename T, typename S>
[[gnu::noinline]] void SgdMomentumRow(T* param, const T* grad, S* buf, int64_t len, float a,
                                      float wd, float mb, float gb, float momentum,
                                      bool nesterov) {
  for (int64_t i = 0; i < len; i++) {
    const float p = Cvt<T>::Load(param[i]);
    const float g = OptimDecayed(Cvt<T>::Load(grad[i]), p, wd);
    const float b = OptimState(mb, Cvt<S>::Load(buf[i]), gb * g);
    buf[i] = Cvt<S>::Store(b);
    param[i] = Cvt<T>::Store(p - a * (nesterov ? g + momentum * b : b));
  }
}

// Adam, Adagrad and RMSprop take a sqrt, which GCC vectorises only with -fno-math-errno
// (setup.py); their arithmetic runs on float rows (AdamF, AdagradF, RmspropF, the same code
// for both types), float16 rows widened into buffers first and the results rounded back
// once, by vectorised loops (inline float16 conversions in a scalar loop cost more than the
// arithmetic: float16 Adam ran 1.6x slower than on float32 copies).

// v[0, len) as floats (len >= 1): v itself, or half_t values widened into buf (a do-while,
// so GCC sees buf written before the arithmetic reads it).
float* Widen(float* v, int64_t, float*) { return v; }
const float* Widen(const float* v, int64_t, float*) { return v; }
float* Widen(const half_t* v, int64_t len, float* buf) {
  int64_t j = 0;
  do buf[j] = Cvt<half_t>::Load(v[j]);
  while (++j < len);
  return buf;
}
// f[0, len) stored into v: nothing to do for float (f is v), rounded once for half_t.
void Narrow(const float*, float*, int64_t) {}
void Narrow(const float* f, half_t* v, int64_t len) {
  for (int64_t j = 0; j < len; j++) v[j] = Cvt<half_t>::Store(f[j]);
}

[[gnu::noinline]] void AdamF(float* param, const float* grad, float* m, float* v, int64_t len,
                             float step_size, float sqrt_bc2, float b1, float b2, float eps,
                             float wd) {
  for (int64_t i = 0; i < len; i++) {
    const float p = param[i];
    const float g = OptimDecayed(grad[i], p, wd);
    const float mi = OptimState(b1, m[i], (1.0f - b1) * g);
    const float vi = OptimState(b2, v[i], (1.0f - b2) * g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = p - step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
}

[[gnu::noinline]] void AdagradF(float* param, const float* grad, float* sum_sq, int64_t len,
                                float a, float eps, float wd) {
  for (int64_t i = 0; i < len; i++) {
    const float p = param[i];
    const float g = OptimDecayed(grad[i], p, wd);
    const float s = sum_sq[i] + g * g;
    sum_sq[i] = s;
    param[i] = p - a * g / (std::sqrt(s) + eps);
  }
}

[[gnu::noinline]] void RmspropF(float* param, const float* grad, float* sq_avg, int64_t len,
                                float a, float rho, float eps, float wd) {
  for (int64_t i = 0; i < len; i++) {
    const float p = param[i];
    const float g = OptimDecayed(grad[i], p, wd);
    const float s = OptimState(rho, sq_avg[i], (1.0f - rho) * g * g);
    sq_avg[i] = s;
    param[i] = p - a * g / (std::sqrt(s) + eps);
  }
}

template <typename T, typename S>
void AdamRow(T* param, const T* grad, S* m, S* v, int64_t len, float step_size,
             float sqrt_bc2, float b1, float b2, float eps, float wd) {
  float pb[kRow], gb[kRow], mb[kRow], vb[kRow];
  float *pf = Widen(param, len, pb), *mf = Widen(m, len, mb), *vf = Widen(v, len, vb);
  AdamF(pf, Widen(grad, len, gb), mf, vf, len, step_size, sqrt_bc2, b1, b2, eps, wd);
  Narrow(pf, param, len);
  Narrow(mf, m, len);
  Narrow(vf, v, len);
}

template <typename T, typename S>
void AdagradRow(T* param, const T* grad, S* sum_sq, int64_t len, float a, float eps,
                float wd) {
  float pb[kRow], gb[kRow], sb[kRow];
  float *pf = Widen(param, len, pb), *sf = Widen(sum_sq, len, sb);
  AdagradF(pf, Widen(grad, len, gb), sf, len, a, eps, wd);
  Narrow(pf, param, len);
  Narrow(sf, sum_sq, len);
}

template <typename T, typename S>
void RmspropRow(T* param, const T* grad, S* sq_avg, int64_t len, float a, float rho,
                float eps, float wd) {
  float pb[kRow], gb[kRow], sb[kRow];
  float *pf = Widen(param, len, pb), *sf = Widen(sq_avg, len, sb);
  RmspropF(pf, Widen(grad, len, gb), sf, len, a, rho, eps, wd);
  Narrow(pf, param, len);
  Narrow(sf, sq_avg, len);
}

template <typename T, typename S>
void SgdT(T* param, const T* grad, S* buf, const float* lr, const float* step, int64_t n,
          float momentum, float dampening, float wd, bool nesterov, const float* hyper) {
  const float a = *lr;
  momentum = OptimHyper(hyper, 0, momentum);
  dampening = OptimHyper(hyper, 1, dampening);
  wd = OptimHyper(hyper, 2, wd);
  if (buf == nullptr) {
    ForRows(n, [&](int64_t i0, int64_t len) { SgdRow(param + i0, grad + i0, len, a, wd); });
    return;
  }
  const bool first = step != nullptr && *step <= 1.0f;
  // buf = mb * buf + gb * g covers both the first step (0, 1) and later ones.
  const float mb = first ? 0.0f : momentum, gb = first ? 1.0f : 1.0f - dampening;
  ForRows(n, [&](int64_t i0, int64_t len) {
    SgdMomentumRow(param + i0, grad + i0, buf + i0, len, a, wd, mb, gb, momentum, nesterov);
  });
}

template <typename T, typename S>
void AdamT(T* param, const T* grad, S* m, S* v, const float* lr, const float* step, int64_t n,
           float beta1, float beta2, float eps, float wd, const float* hyper) {
  beta1 = OptimHyper(hyper, 0, beta1);
  beta2 = OptimHyper(hyper, 1, beta2);
  eps = OptimHyper(hyper, 2, eps);
  wd = OptimHyper(hyper, 3, wd);
  const double t = *step;
  const double bc1 = 1.0 - std::pow(double(beta1), t), bc2 = 1.0 - std::pow(double(beta2), t);
  const float step_size = static_cast<float>(*lr / bc1);
  const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  ForRows(n, [&](int64_t i0, int64_t len) {
    AdamRow(param + i0, grad + i0, m + i0, v + i0, len, step_size, sqrt_bc2, beta1, beta2, eps,
            wd);
  });
}

template <typename T, typename S>
void AdagradT(T* param, const T* grad, S* sum_sq, const float* lr, int64_t n, float eps,
              float wd, const float* hyper) {
  const float a = *lr;
  eps = OptimHyper(hyper, 0, eps);
  wd = OptimHyper(hyper, 1, wd);
  ForRows(n, [&](int64_t i0, int64_t len) {
    AdagradRow(param + i0, grad + i0, sum_sq + i0, len, a, eps, wd);
  });
}

template <typename T, typename S>
void RmspropT(T* param, const T* grad, S* sq_avg, const float* lr, int64_t n, float rho,
              float eps, float wd, const float* hyper) {
  const float a = *lr;
  rho = OptimHyper(hyper, 0, rho);
  eps = OptimHyper(hyper, 1, eps);
  wd = OptimHyper(hyper, 2, wd);
  ForRows(n, [&](int64_t i0, int64_t len) {
    RmspropRow(param + i0, grad + i0, sq_avg + i0, len, a, rho, eps, wd);
  });
}

}  // namespace

// The overloads of kernels/optim.h: (T, S) = (float, float), (half_t, half_t), (half_t, float).
#define MS_OPTIM_OVERLOADS(T, S)                                                             \
  void SgdUpdate(Context*, T* param, const T* grad, S* buf, const float* lr,                 \
                 const float* step, int64_t n, float momentum, float dampening,              \
                 float weight_decay, bool nesterov, const float* hyper) {                    \
    SgdT(param, grad, buf, lr, step, n, momentum, dampening, weight_decay, nesterov, hyper); \
  }                                                                                          \
  void AdamUpdate(Context*, T* param, const T* grad, S* m, S* v, const float* lr,            \
                  const float* step, int64_t n, float beta1, float beta2, float eps,         \
                  float weight_decay, const float* hyper) {                                  \
    AdamT(param, grad, m, v, lr, step, n, beta1, beta2, eps, weight_decay, hyper);           \
  }                                                                                          \
  void AdagradUpdate(Context*, T* param, const T* grad, S* sum_sq, const float* lr,          \
                     int64_t n, float eps, float weight_decay, const float* hyper) {         \
    AdagradT(param, grad, sum_sq, lr, n, eps, weight_decay, hyper);                          \
  }                                                                                          \
  void RmspropUpdate(Context*, T* param, const T* grad, S* sq_avg, const float* lr,          \
                     int64_t n, float rho, float eps, float weight_decay,                    \
                     const float* hyper) {                                                   \
    RmspropT(param, grad, sq_avg, lr, n, rho, eps, weight_decay, hyper);                     \
  }
MS_OPTIM_OVERLOADS(float, float)
MS_OPTIM_OVERLOADS(half_t, half_t)
MS_OPTIM_OVERLOADS(half_t, float)
#undef MS_OPTIM_OVERLOADS

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
