// CPU convolution kernels: im2col / col2im with the padding split out of the inner loop
// (so the copy of the valid columns is a plain strided loop), OpenBLAS sgemm, and the
// layout passes between a chunk's [C, B, HW] GEMM operands and NCHW tensors.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"
#include "kernels/conv.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

template <typename T>
void Im2ColT(const T* x, int64_t batch, const ConvGeom& g, int64_t row0, int64_t rows,
             T* col) {
  const int64_t KK = g.KH * g.KW, R = g.C * KK;
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const int64_t items = R * batch;
  const T zero{};  // +0 in both types
  // Image-major, so that each thread fills the columns its share of the GEMM reads.
#pragma omp parallel for schedule(static) if (R * ld > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t b = it / R, r = it % R;
    const int64_t c = r / KK, kh = (r % KK) / g.KW, kw = r % g.KW;
    const T* plane = x + (b * g.C + c) * g.H * g.W;
    T* dst = col + r * ld + b * cols_img;
    const int64_t off = kw * g.DW - g.PL;
    int64_t lo, hi;
    ValidRange(off, g.SW, g.W, g.OW, &lo, &hi);
    for (int64_t i = 0; i < rows; i++, dst += g.OW) {
      const int64_t ih = (row0 + i) * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) {
        std::fill(dst, dst + g.OW, zero);
        continue;
      }
      const T* src = plane + ih * g.W + off;
      for (int64_t ow = 0; ow < lo; ow++) dst[ow] = zero;
      if (g.SW == 1) {
        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow];
      } else {
        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * g.SW];
      }
      for (int64_t ow = hi; ow < g.OW; ow++) dst[ow] = zero;
    }
  }
}

// Sums one image plane's col entries into acc (H x W, float32).
[[gnu::always_inline]] inline void Col2ImPlane(const float* col, const ConvGeom& g,
                                               int64_t row0, int64_t rows, int64_t ld,
                                               int64_t c, int64_t img_off, float* acc) {
  for (int64_t kh = 0; kh < g.KH; kh++) {
    for (int64_t kw = 0; kw < g.KW; kw++) {
      const float* src = col + ((c * g.KH + kh) * g.KW + kw) * ld + img_off;
      const int64_t off = kw * g.DW - g.PL;
      int64_t lo, hi;
      ValidRange(off, g.SW, g.W, g.OW, &lo, &hi);
      for (int64_t i = 0; i < rows; i++, src += g.OW) {
        const int64_t ih = (row0 + i) * g.SH - g.PT + kh * g.DH;
        if (ih < 0 || ih >= g.H) continue;
        float* dst = acc + ih * g.W + off;
        if (g.SW == 1) {
          for (int64_t ow = lo; ow < hi; ow++) dst[ow] += src[ow];
        } else {
          for (int64_t ow = lo; ow < hi; ow++) dst[ow * g.SW] += src[ow];
        }
      }
    }
  }
}

template <typename T>
void Col2ImT(const float* col, int64_t batch, const ConvGeom& g, int64_t row0, int64_t rows,
             bool accumulate, T* x) {
  const int64_t KK = g.KH * g.KW, HW = g.H * g.W;
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const int64_t items = batch * g.C;  // one input plane each: no two items write one cell
#pragma omp parallel if (g.C * KK * ld > MS_OMP_MIN)
  {
    std::vector<float> buf(std::is_same<T, float>::value ? 0 : HW);  // float16: a float32 sum
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; it++) {
      T* plane = x + it * HW;
      if constexpr (std::is_same<T, float>::value) {
        if (!accumulate) std::fill(plane, plane + HW, 0.f);
        Col2ImPlane(col, g, row0, rows, ld, it % g.C, it / g.C * cols_img, plane);
      } else {
        for (int64_t i = 0; i < HW; i++) buf[i] = accumulate ? Cvt<T>::Load(plane[i]) : 0.f;
        Col2ImPlane(col, g, row0, rows, ld, it % g.C, it / g.C * cols_img, buf.data());
        for (int64_t i = 0; i < HW; i++) plane[i] = Cvt<T>::Store(buf[i]);
      }
    }
  }
}

template <typename S, typename T>
void ScatterT(const S* src, const T* bias, int64_t batch, int64_t channels, int64_t hw,
              T* dst) {
  const int64_t items = batch * channels;
#pragma omp parallel for schedule(static) if (items * hw > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t b = it / channels, c = it % channels;
    const S* s = src + (c * batch + b) * hw;
    T* d = dst + it * hw;
    const float v = bias ? Cvt<T>::Load(bias[c]) : 0.f;
    for (int64_t i = 0; i < hw; i++) d[i] = Cvt<T>::Store(Cvt<S>::Load(s[i]) + v);
  }
}

template <typename T>
void GatherT(const T* src, int64_t batch, int64_t channels, int64_t hw, T* dst) {
  const int64_t items = batch * channels;
#pragma omp parallel for schedule(static) if (items * hw > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {  // image-major, like Im2Col
    const int64_t b = it / channels, c = it % channels;
    std::copy(src + it * hw, src + (it + 1) * hw, dst + (c * batch + b) * hw);
  }
}

}  // namespace

void Im2Col(Context*, const float* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* col) {
  Im2ColT(x, batch, g, row0, rows, col);
}
void Im2Col(Context*, const half_t* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, half_t* col) {
  Im2ColT(x, batch, g, row0, rows, col);
}

void Col2Im(Context*, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, bool accumulate, float* x) {
  Col2ImT(col, batch, g, row0, rows, accumulate, x);
}
void Col2Im(Context*, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, bool accumulate, half_t* x) {
  Col2ImT(col, batch, g, row0, rows, accumulate, x);
}

void ConvScatter(Context*, const float* src, const float* bias, int64_t batch,
                 int64_t channels, int64_t hw, float* dst) {
  ScatterT(src, bias, batch, channels, hw, dst);
}
void ConvScatter(Context*, const float* src, const half_t* bias, int64_t batch,
                 int64_t channels, int64_t hw, half_t* dst) {
  ScatterT(src, bias, batch, channels, hw, dst);
}
void ConvScatter(Context*, const half_t* src, const half_t* bias, int64_t batch,
                 int64_t channels, int64_t hw, half_t* dst) {
  ScatterT(src, bias, batch, channels, hw, dst);
}

void ConvGather(Context*, const float* src, int64_t batch, int64_t channels, int64_t hw,
                float* dst) {
  GatherT(src, batch, channels, hw, dst);
}
void ConvGather(Context*, const half_t* src, int64_t batch, int64_t channels, int64_t hw,
                half_t* dst) {
  GatherT(src, batch, channels, hw, dst);
}

namespace {

// The sum of hw floats in the order of GCC's vectorised reduction: inlined into both element
// types' loops alike (float16 rows are widened first), so they sum in the same order.
[[gnu::always_inline]] inline float RowSum(const float* s, int64_t hw) {
  float part = 0.f;
#pragma omp simd reduction(+ : part)
  for (int64_t i = 0; i < hw; i++) part += s[i];
  return part;
}

template <typename T>
void BiasGradT(const T* dy, int64_t batch, int64_t channels, int64_t hw, T* db) {
#pragma omp parallel for schedule(static) if (batch * channels * hw > MS_OMP_MIN)
  for (int64_t c = 0; c < channels; c++) {
    double acc = 0;
    if constexpr (std::is_same<T, float>::value) {
      for (int64_t b = 0; b < batch; b++) acc += RowSum(dy + (b * channels + c) * hw, hw);
    } else {
      std::vector<float> row(hw);
      for (int64_t b = 0; b < batch; b++) {
        const T* s = dy + (b * channels + c) * hw;
        for (int64_t i = 0; i < hw; i++) row[i] = Cvt<T>::Load(s[i]);
        acc += RowSum(row.data(), hw);
      }
    }
    db[c] = Cvt<T>::Store(static_cast<float>(acc));
  }
}

}  // namespace

void ConvBiasGrad(Context*, const float* dy, int64_t batch, int64_t channels, int64_t hw,
                  float* db) {
  BiasGradT(dy, batch, channels, hw, db);
}
void ConvBiasGrad(Context*, const half_t* dy, int64_t batch, int64_t channels, int64_t hw,
                  half_t* db) {
  BiasGradT(dy, batch, channels, hw, db);
}

// Depthwise kernels: one OpenMP item per output plane (forward, weight) or input plane
// (data); rows of the window are strided AXPYs / dot products over the valid columns.
//
// Stride 1 with short rows (OW < kFlatRows) instead works on the zero-padded input plane,
// PH x PW: output (oh, ow) at flat position oh * PW + ow reads the padded plane at that
// position plus kh * DH * PW + kw * DW, so each kernel cell is ONE AXPY / dot product over
// L = (OH - 1) * PW + OW positions (the columns ow >= OW in between are computed and
// dropped, or zero), not OH row-length loops of a dozen elements each.
namespace {

constexpr int64_t kFlatRows = 64;

struct FlatPlane {
  int64_t PH, PW, L;
  explicit FlatPlane(const ConvGeom& g)
      : PH(g.H + g.PT + g.PB), PW(g.W + g.PL + g.PR), L((g.OH - 1) * PW + g.OW) {}
  static bool Applies(const ConvGeom& g) {
    return g.SH == 1 && g.SW == 1 && g.OW < kFlatRows && g.OH > 0 && g.OW > 0;
  }
  int64_t Offset(const ConvGeom& g, int64_t kh, int64_t kw) const {
    return kh * g.DH * PW + kw * g.DW;
  }
  // The image plane into the middle of a zeroed PH x PW buffer.
  void Pad(const ConvGeom& g, const float* plane, float* buf) const {
    std::memset(buf, 0, sizeof(float) * PH * PW);
    for (int64_t h = 0; h < g.H; h++)
      std::memcpy(buf + (h + g.PT) * PW + g.PL, plane + h * g.W, sizeof(float) * g.W);
  }
  // An OH x OW plane (dy) at width PW, zeros in the columns past OW.
  void Widen(const ConvGeom& g, const float* plane, float* buf) const {
    std::memset(buf, 0, sizeof(float) * g.OH * PW);
    for (int64_t h = 0; h < g.OH; h++)
      std::memcpy(buf + h * PW, plane + h * g.OW, sizeof(float) * g.OW);
  }
};

void DepthwiseFlat(const float* x, const float* w, const float* bias, int64_t batch,
                   const ConvGeom& g, int64_t multiplier, float* y) {
  const FlatPlane f(g);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, items = batch * Cout;
#pragma omp parallel if (items * g.OH * g.OW * KK > MS_OMP_MIN)
  {
    std::vector<float> pad(f.PH * f.PW), acc(f.L);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; it++) {
      const int64_t n = it / Cout, co = it % Cout, c = co / multiplier;
      f.Pad(g, x + (n * g.C + c) * g.H * g.W, pad.data());
      const float* wk = w + co * KK;
      float* a = acc.data();
      std::fill(acc.begin(), acc.end(), bias ? bias[co] : 0.f);
      for (int64_t kh = 0; kh < g.KH; kh++)
        for (int64_t kw = 0; kw < g.KW; kw++) {
          const float wv = wk[kh * g.KW + kw];
          const float* src = pad.data() + f.Offset(g, kh, kw);
          for (int64_t i = 0; i < f.L; i++) a[i] += wv * src[i];
        }
      float* out = y + it * g.OH * g.OW;
      for (int64_t oh = 0; oh < g.OH; oh++)
        std::memcpy(out + oh * g.OW, a + oh * f.PW, sizeof(float) * g.OW);
    }
  }
}

void DepthwiseFlatBackwardData(const float* dy, const float* w, int64_t batch,
                               const ConvGeom& g, int64_t multiplier, float* dx) {
  const FlatPlane f(g);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, items = batch * g.C;
#pragma omp parallel if (items * multiplier * g.OH * g.OW * KK > MS_OMP_MIN)
  {
    std::vector<float> grad(g.OH * f.PW), acc(f.PH * f.PW);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; it++) {
      const int64_t n = it / g.C, c = it % g.C;
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < multiplier; j++) {
        const int64_t co = c * multiplier + j;
        f.Widen(g, dy + (n * Cout + co) * g.OH * g.OW, grad.data());
        const float* wk = w + co * KK;
        for (int64_t kh = 0; kh < g.KH; kh++)
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const float wv = wk[kh * g.KW + kw];
            float* dst = acc.data() + f.Offset(g, kh, kw);
            const float* src = grad.data();
            for (int64_t i = 0; i < f.L; i++) dst[i] += wv * src[i];
          }
      }
      float* plane = dx + it * g.H * g.W;
      for (int64_t h = 0; h < g.H; h++)
        std::memcpy(plane + h * g.W, acc.data() + (h + g.PT) * f.PW + g.PL,
                    sizeof(float) * g.W);
    }
  }
}

void DepthwiseFlatBackwardWeight(const float* dy, const float* x, int64_t batch,
                                 const ConvGeom& g, int64_t multiplier, float* dw) {
  const FlatPlane f(g);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW;
#pragma omp parallel if (batch * Cout * g.OH * g.OW * KK > MS_OMP_MIN)
  {
    std::vector<float> pad(f.PH * f.PW), grad(g.OH * f.PW);
    std::vector<double> sum(KK);
#pragma omp for schedule(static)
    for (int64_t co = 0; co < Cout; co++) {
      const int64_t c = co / multiplier;
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t n = 0; n < batch; n++) {
        f.Pad(g, x + (n * g.C + c) * g.H * g.W, pad.data());
        f.Widen(g, dy + (n * Cout + co) * g.OH * g.OW, grad.data());
        for (int64_t kh = 0; kh < g.KH; kh++)
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const float* src = pad.data() + f.Offset(g, kh, kw);
            const float* gr = grad.data();
            float dot = 0.f;
#pragma omp simd reduction(+ : dot)
            for (int64_t i = 0; i < f.L; i++) dot += gr[i] * src[i];
            sum[kh * g.KW + kw] += dot;
          }
      }
      for (int64_t k = 0; k < KK; k++) dw[co * KK + k] = static_cast<float>(sum[k]);
    }
  }
}

}  // namespace

void DepthwiseConv2d(Context*, const float* x, const float* w, const float* bias,
                     int64_t batch, const ConvGeom& g, int64_t multiplier, float* y) {
  if (FlatPlane::Applies(g)) return DepthwiseFlat(x, w, bias, batch, g, multiplier, y);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, P = g.OH * g.OW;
  const std::vector<ColRange> cols = ColRanges(g);
  const int64_t items = batch * Cout;
#pragma omp parallel for schedule(static) if (items * P * KK > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t n = it / Cout, co = it % Cout, c = co / multiplier;
    const float* plane = x + (n * g.C + c) * g.H * g.W;
    const float* wk = w + co * KK;
    float* out = y + it * P;
    const float b = bias ? bias[co] : 0.f;
    for (int64_t oh = 0; oh < g.OH; oh++) {
      float* row = out + oh * g.OW;
      for (int64_t ow = 0; ow < g.OW; ow++) row[ow] = b;
      for (int64_t kh = 0; kh < g.KH; kh++) {
        const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.KW; kw++) {
          const int64_t off = cols[kw].off, lo = cols[kw].lo, hi = cols[kw].hi;
          const float* src = plane + ih * g.W + off;
          const float wv = wk[kh * g.KW + kw];
          if (g.SW == 1) {
            for (int64_t ow = lo; ow < hi; ow++) row[ow] += wv * src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ow++) row[ow] += wv * src[ow * g.SW];
          }
        }
      }
    }
  }
}

void DepthwiseConv2dBackwardData(Context*, const float* dy, const float* w, int64_t batch,
                                 const ConvGeom& g, int64_t multiplier, float* dx) {
  if (FlatPlane::Applies(g))
    return DepthwiseFlatBackwardData(dy, w, batch, g, multiplier, dx);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, P = g.OH * g.OW;
  const std::vector<ColRange> cols = ColRanges(g);
  const int64_t items = batch * g.C;
#pragma omp parallel for schedule(static) if (items * multiplier * P * KK > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t n = it / g.C, c = it % g.C;
    float* plane = dx + it * g.H * g.W;
    std::memset(plane, 0, sizeof(float) * g.H * g.W);
    for (int64_t j = 0; j < multiplier; j++) {
      const int64_t co = c * multiplier + j;
      const float* grad = dy + (n * Cout + co) * P;
      const float* wk = w + co * KK;
      for (int64_t oh = 0; oh < g.OH; oh++) {
        const float* row = grad + oh * g.OW;
        for (int64_t kh = 0; kh < g.KH; kh++) {
          const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const int64_t off = cols[kw].off, lo = cols[kw].lo, hi = cols[kw].hi;
            float* dst = plane + ih * g.W + off;
            const float wv = wk[kh * g.KW + kw];
            if (g.SW == 1) {
              for (int64_t ow = lo; ow < hi; ow++) dst[ow] += wv * row[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ow++) dst[ow * g.SW] += wv * row[ow];
            }
          }
        }
      }
    }
  }
}

void DepthwiseConv2dBackwardWeight(Context*, const float* dy, const float* x, int64_t batch,
                                   const ConvGeom& g, int64_t multiplier, float* dw) {
  if (FlatPlane::Applies(g))
    return DepthwiseFlatBackwardWeight(dy, x, batch, g, multiplier, dw);
  const int64_t Cout = g.C * multiplier, KK = g.KH * g.KW, P = g.OH * g.OW;
  const std::vector<ColRange> cols = ColRanges(g);
#pragma omp parallel for schedule(static) if (batch * Cout * P * KK > MS_OMP_MIN)
  for (int64_t co = 0; co < Cout; co++) {
    const int64_t c = co / multiplier;
    // Per kernel cell, a row of per-column partial sums: the inner loop is an elementwise
    // multiply-add (vectorised), reduced once at the end.
    std::vector<float> acc(KK * g.OW, 0.f);
    for (int64_t n = 0; n < batch; n++) {
      const float* plane = x + (n * g.C + c) * g.H * g.W;
      const float* grad = dy + (n * Cout + co) * P;
      for (int64_t oh = 0; oh < g.OH; oh++) {
        const float* row = grad + oh * g.OW;
        for (int64_t kh = 0; kh < g.KH; kh++) {
          const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const int64_t off = cols[kw].off, lo = cols[kw].lo, hi = cols[kw].hi;
            const float* src = plane + ih * g.W + off;
            float* a = acc.data() + (kh * g.KW + kw) * g.OW;
            if (g.SW == 1) {
              for (int64_t ow = lo; ow < hi; ow++) a[ow] += row[ow] * src[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ow++) a[ow] += row[ow] * src[ow * g.SW];
            }
          }
        }
      }
    }
    for (int64_t k = 0; k < KK; k++) {
      float sum = 0.f;
      for (int64_t ow = 0; ow < g.OW; ow++) sum += acc[k * g.OW + ow];
      dw[co * KK + k] = sum;
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
