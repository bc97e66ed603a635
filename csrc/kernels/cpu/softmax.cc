// CPU softmax family (exp is ew::Exp: vectorisable, within an ulp of the C library's). A
// contiguous row (inner == 1) is reduced with vectorised loops;
// otherwise each work item takes one outer index and a chunk of inner columns, keeping
// per-column max/sum in stack buffers so the loops over columns stay unit-stride.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/dispatch.h"
#include "kernels/elementwise_ops.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kChunk = 256;  // inner columns per work item
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <typename T>
inline float Ld(T v) {
  return Cvt<T>::Load(v);
}
template <typename T>
inline T St(float v) {
  return Cvt<T>::Store(v);
}

// Calls body(offset of element (o, 0, i0), width) for every (outer index, column chunk).
template <typename Body>
void ForEachSlice(int64_t outer, int64_t d, int64_t inner, Body body) {
  const int64_t chunks = (inner + kChunk - 1) / kChunk, items = outer * chunks;
#pragma omp parallel for schedule(static) if (outer * d * inner > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t o = it / chunks, i0 = it % chunks * kChunk;
    body(o * d * inner + i0, std::min(kChunk, inner - i0));
  }
}

// exp(x[k] - m) into e[0, d) (a plain loop, so it vectorises), returning their sum in double
// (summed in a second loop: a double sum in the exp's loop keeps it scalar).
template <typename T>
double ExpSum(const T* x, float m, float* e, int64_t d) {
  for (int64_t k = 0; k < d; k++) e[k] = ew::Exp(Ld(x[k]) - m);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; k++) s += e[k];
  return s;
}

template <typename T>
float RowMax(const T* x, int64_t d) {
  float m = -kInf;
#pragma omp simd reduction(max : m)
  for (int64_t k = 0; k < d; k++) {
    const float v = Ld(x[k]);
    m = v > m ? v : m;
  }
  return m;
}

// Max (NaNs skipped: they reach the output through the sum) and sum of exp(x - max).
// Sums accumulate in double so that long rows keep float32 accuracy.
template <typename T>
void RowMaxSum(const T* x, int64_t d, float* max, float* sum) {
  const float m = RowMax(x, d);
  float e[kChunk];
  double s = 0;
  for (int64_t k0 = 0; k0 < d; k0 += kChunk) s += ExpSum(x + k0, m, e, std::min(kChunk, d - k0));
  *max = m;
  *sum = static_cast<float>(s);
}

// p = softmax(x) of a row, returning its max and sum of exp(x - max). float32 output keeps
// exp(x - max) from the summing pass and rescales it (one exp per element); float16
// recomputes it rather than round an intermediate to half.
template <typename T>
void WriteProb(const T* x, T* p, int64_t d, float* max, float* sum) {
  const float m = RowMax(x, d);
  double s;
  if constexpr (std::is_same<T, float>::value) {
    s = ExpSum(x, m, p, d);
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t k = 0; k < d; k++) p[k] *= inv;
  } else {
    float e[kChunk];
    s = 0;
    for (int64_t k0 = 0; k0 < d; k0 += kChunk) s += ExpSum(x + k0, m, e, std::min(kChunk, d - k0));
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t k = 0; k < d; k++) p[k] = St<T>(ew::Exp(Ld(x[k]) - m) * inv);
  }
  *max = m;
  *sum = static_cast<float>(s);
}

template <typename T>
void SoftmaxRow(bool log, const T* x, T* y, int64_t d) {
  float m, s;
  if (!log) return WriteProb(x, y, d, &m, &s);
  RowMaxSum(x, d, &m, &s);
  const float lse = m + std::log(s);
  for (int64_t k = 0; k < d; k++) y[k] = St<T>(Ld(x[k]) - lse);
}

// Columns [0, w) of a (d, inner) slice starting at x.
template <typename T>
void SoftmaxCols(bool log, const T* x, T* y, int64_t d, int64_t inner, int64_t w) {
  float m[kChunk];
  double s[kChunk];
  for (int64_t i = 0; i < w; i++) m[i] = -kInf, s[i] = 0;
  for (int64_t k = 0; k < d; k++) {
    const T* xr = x + k * inner;
    for (int64_t i = 0; i < w; i++) {
      const float v = Ld(xr[i]);
      m[i] = v > m[i] ? v : m[i];
    }
  }
  float e[kChunk];
  for (int64_t k = 0; k < d; k++) {
    const T* xr = x + k * inner;
    for (int64_t i = 0; i < w; i++) e[i] = ew::Exp(Ld(xr[i]) - m[i]);
    for (int64_t i = 0; i < w; i++) s[i] += e[i];
  }
  for (int64_t i = 0; i < w; i++) {
    if (log)
      m[i] += std::log(s[i]);
    else
      s[i] = 1.0 / s[i];
  }
  for (int64_t k = 0; k < d; k++) {
    const T* xr = x + k * inner;
    T* yr = y + k * inner;
    if (log)
      for (int64_t i = 0; i < w; i++) yr[i] = St<T>(Ld(xr[i]) - m[i]);
    else
      for (int64_t i = 0; i < w; i++)
        yr[i] = St<T>(ew::Exp(Ld(xr[i]) - m[i]) * static_cast<float>(s[i]));
  }
}

// The per-column reduction of the backward: sum(dy * y) (softmax) or sum(dy) (log).
template <typename T>
void BackwardCols(bool log, const T* y, const T* dy, T* dx, int64_t d, int64_t inner,
                  int64_t w) {
  double a[kChunk];
  for (int64_t i = 0; i < w; i++) a[i] = 0;
  for (int64_t k = 0; k < d; k++) {
    const T* yr = y + k * inner;
    const T* gr = dy + k * inner;
    if (log)
      for (int64_t i = 0; i < w; i++) a[i] += Ld(gr[i]);
    else
      for (int64_t i = 0; i < w; i++) a[i] += static_cast<double>(Ld(gr[i]) * Ld(yr[i]));
  }
  for (int64_t k = 0; k < d; k++) {
    const T* yr = y + k * inner;
    const T* gr = dy + k * inner;
    T* xr = dx + k * inner;
    if (log)
      for (int64_t i = 0; i < w; i++)
        xr[i] = St<T>(Ld(gr[i]) - ew::Exp(Ld(yr[i])) * static_cast<float>(a[i]));
    else
      for (int64_t i = 0; i < w; i++)
        xr[i] = St<T>(Ld(yr[i]) * (Ld(gr[i]) - static_cast<float>(a[i])));
  }
}

template <typename T>
void BackwardRow(bool log, const T* y, const T* dy, T* dx, int64_t d) {
  double acc = 0;
  if (log) {
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < d; k++) acc += Ld(dy[k]);
    const float a = static_cast<float>(acc);
    for (int64_t k = 0; k < d; k++) dx[k] = St<T>(Ld(dy[k]) - ew::Exp(Ld(y[k])) * a);
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < d; k++) acc += static_cast<double>(Ld(dy[k]) * Ld(y[k]));
    const float a = static_cast<float>(acc);
    for (int64_t k = 0; k < d; k++) dx[k] = St<T>(Ld(y[k]) * (Ld(dy[k]) - a));
  }
}

// Rows shorter than kPadRow whose length is not a multiple of kPadTo run on a float copy
// padded to one (-inf logits, zero gradients: nothing added), reduced lane by lane (kPadTo
// partial maxima / sums, then a tree over them): a row of 28 otherwise spends most of its
// time in scalar tails and in the in-order horizontal sum of double partial sums.
constexpr int64_t kPadRow = 256, kPadTo = 16;

inline bool PadsRow(int64_t inner, int64_t d) { return inner == 1 && d < kPadRow && d % kPadTo; }

template <typename T>
int64_t LoadPadded(const T* x, int64_t d, float fill, float* buf) {
  const int64_t dp = (d + kPadTo - 1) / kPadTo * kPadTo;
  for (int64_t k = 0; k < d; k++) buf[k] = Ld(x[k]);
  for (int64_t k = d; k < dp; k++) buf[k] = fill;
  return dp;
}

// Lane sums of at most kPadRow / kPadTo values each (float32 keeps them exact to an ulp or
// two), added pairwise.
inline float LaneTotal(float* lanes) {
  for (int64_t w = kPadTo / 2; w > 0; w /= 2)
    for (int64_t j = 0; j < w; j++) lanes[j] += lanes[j + w];
  return lanes[0];
}

template <typename T>
void SoftmaxPaddedRow(bool log, const T* x, T* y, int64_t d) {
  float bx[kPadRow], e[kPadRow], lane[kPadTo];
  const int64_t dp = LoadPadded(x, d, -kInf, bx);
  for (int64_t j = 0; j < kPadTo; j++) lane[j] = -kInf;
  for (int64_t k = 0; k < dp; k += kPadTo)  // NaNs skipped, as RowMax
    for (int64_t j = 0; j < kPadTo; j++) lane[j] = bx[k + j] > lane[j] ? bx[k + j] : lane[j];
  for (int64_t w = kPadTo / 2; w > 0; w /= 2)
    for (int64_t j = 0; j < w; j++) lane[j] = lane[j + w] > lane[j] ? lane[j + w] : lane[j];
  const float m = lane[0];
  for (int64_t j = 0; j < kPadTo; j++) lane[j] = 0.0f;
  for (int64_t k = 0; k < dp; k += kPadTo)
    for (int64_t j = 0; j < kPadTo; j++) {
      e[k + j] = ew::Exp(bx[k + j] - m);
      lane[j] += e[k + j];
    }
  const float s = LaneTotal(lane);
  if (log) {
    const float lse = m + std::log(s);
    for (int64_t k = 0; k < d; k++) y[k] = St<T>(bx[k] - lse);
  } else {
    const float inv = 1.0f / s;
    for (int64_t k = 0; k < d; k++) y[k] = St<T>(e[k] * inv);
  }
}

template <typename T>
void BackwardPaddedRow(bool log, const T* y, const T* dy, T* dx, int64_t d) {
  float by[kPadRow], bg[kPadRow], lane[kPadTo] = {};
  LoadPadded(y, d, 0.0f, by);
  const int64_t dp = LoadPadded(dy, d, 0.0f, bg);
  for (int64_t k = 0; k < dp; k += kPadTo)
    for (int64_t j = 0; j < kPadTo; j++) lane[j] += log ? bg[k + j] : bg[k + j] * by[k + j];
  const float a = LaneTotal(lane);
  if (log)
    for (int64_t k = 0; k < d; k++) dx[k] = St<T>(bg[k] - ew::Exp(by[k]) * a);
  else
    for (int64_t k = 0; k < d; k++) dx[k] = St<T>(by[k] * (bg[k] - a));
}

// The label of row i, or -1 when it is outside [0, c).
inline int64_t Label(const void* target, int64_t i, int64_t c) {
  const int32_t t = static_cast<const int32_t*>(target)[i];
  return t >= 0 && t < c ? t : -1;
}

template <typename T>
void SceT(const T* x, const void* target, bool labels, T* loss, T* prob, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const T* xr = x + i * c;
    T* pr = prob + i * c;
    float m, s;
    WriteProb(xr, pr, c, &m, &s);
    const float log_s = std::log(s);
    double l = 0;  // -log softmax[k] = (m - x[k]) + log s
    if (labels) {
      const int64_t t = Label(target, i, c);
      l = t < 0 ? kNaN : (m - Ld(xr[t])) + log_s;
    } else {
      const T* tr = static_cast<const T*>(target) + i * c;
#pragma omp simd reduction(+ : l)
      for (int64_t k = 0; k < c; k++) l += Ld(tr[k]) * ((m - Ld(xr[k])) + log_s);
    }
    loss[i] = St<T>(static_cast<float>(l));
  }
}

template <typename T>
void SceBackwardT(const T* prob, const void* target, bool labels, const T* dloss, T* dx,
                  int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const T* pr = prob + i * c;
    T* xr = dx + i * c;
    const float g = Ld(dloss[i]);
    if (labels) {
      const int64_t t = Label(target, i, c);
      const float gg = t < 0 ? 0.0f : g;  // a bad label's row: no gradient
      for (int64_t k = 0; k < c; k++) xr[k] = St<T>(Ld(pr[k]) * gg);
      if (t >= 0) xr[t] = St<T>((Ld(pr[t]) - 1.0f) * g);
    } else {
      const T* tr = static_cast<const T*>(target) + i * c;
      for (int64_t k = 0; k < c; k++) xr[k] = St<T>((Ld(pr[k]) - Ld(tr[k])) * g);
    }
  }
}

inline float ClampP(float p) { return p > kCrossEntropyEps ? p : kCrossEntropyEps; }

template <typename T>
void CeT(const T* prob, const void* target, bool labels, T* loss, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const T* pr = prob + i * c;
    double l = 0;
    if (labels) {
      const int64_t t = Label(target, i, c);
      l = t < 0 ? kNaN : -std::log(ClampP(Ld(pr[t])));
    } else {
      const T* tr = static_cast<const T*>(target) + i * c;
      for (int64_t k = 0; k < c; k++) l -= Ld(tr[k]) * std::log(ClampP(Ld(pr[k])));
    }
    loss[i] = St<T>(static_cast<float>(l));
  }
}

template <typename T>
void CeBackwardT(const T* prob, const void* target, bool labels, const T* dloss, T* dx,
                 int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) {
    const T* pr = prob + i * c;
    T* xr = dx + i * c;
    const float g = Ld(dloss[i]);
    if (labels) {
      const int64_t t = Label(target, i, c);
      for (int64_t k = 0; k < c; k++) xr[k] = St<T>(0.0f);  // all of a bad label's row
      if (t >= 0) xr[t] = St<T>(-g / ClampP(Ld(pr[t])));
    } else {
      const T* tr = static_cast<const T*>(target) + i * c;
      for (int64_t k = 0; k < c; k++) xr[k] = St<T>(-Ld(tr[k]) / ClampP(Ld(pr[k])) * g);
    }
  }
}

}  // namespace

void Softmax(Context*, bool log, DType dt, const void* x, void* y, int64_t outer, int64_t d,
             int64_t inner) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    const bool pad = PadsRow(inner, d);
    ForEachSlice(outer, d, inner, [&](int64_t off, int64_t w) {
      if (pad)
        SoftmaxPaddedRow(log, xp + off, yp + off, d);
      else if (inner == 1)
        SoftmaxRow(log, xp + off, yp + off, d);
      else
        SoftmaxCols(log, xp + off, yp + off, d, inner, w);
    });
  });
}

void SoftmaxBackward(Context*, bool log, DType dt, const void* y, const void* dy, void* dx,
                     int64_t outer, int64_t d, int64_t inner) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* yp = static_cast<const T*>(y);
    const T* gp = static_cast<const T*>(dy);
    T* xp = static_cast<T*>(dx);
    const bool pad = PadsRow(inner, d);
    ForEachSlice(outer, d, inner, [&](int64_t off, int64_t w) {
      if (pad)
        BackwardPaddedRow(log, yp + off, gp + off, xp + off, d);
      else if (inner == 1)
        BackwardRow(log, yp + off, gp + off, xp + off, d);
      else
        BackwardCols(log, yp + off, gp + off, xp + off, d, inner, w);
    });
  });
}

void SoftmaxCrossEntropy(Context*, DType dt, const void* logits, const void* target,
                         bool labels, void* loss, void* prob, int64_t n, int64_t c) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    SceT(static_cast<const T*>(logits), target, labels, static_cast<T*>(loss),
         static_cast<T*>(prob), n, c);
  });
}

void SoftmaxCrossEntropyBackward(Context*, DType dt, const void* prob, const void* target,
                                 bool labels, const void* dloss, void* dlogits, int64_t n,
                                 int64_t c) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    SceBackwardT(static_cast<const T*>(prob), target, labels, static_cast<const T*>(dloss),
                 static_cast<T*>(dlogits), n, c);
  });
}

void CrossEntropy(Context*, DType dt, const void* prob, const void* target, bool labels,
                  void* loss, int64_t n, int64_t c) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CeT(static_cast<const T*>(prob), target, labels, static_cast<T*>(loss), n, c);
  });
}

void CrossEntropyBackward(Context*, DType dt, const void* prob, const void* target, bool labels,
                          const void* dloss, void* dprob, int64_t n, int64_t c) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CeBackwardT(static_cast<const T*>(prob), target, labels, static_cast<const T*>(dloss),
                static_cast<T*>(dprob), n, c);
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
