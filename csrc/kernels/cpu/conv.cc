// CPU convolution kernels: im2col / col2im with the padding split out of the inner loop
// (so the copy of the valid columns is a plain strided loop), OpenBLAS sgemm, and the
// layout passes between a chunk's [C, B, HW] GEMM operands and NCHW tensors.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "core/dispatch.h"
#include "kernels/conv.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// Output columns [lo, hi) whose input column ow*S + off lies inside [0, W).
inline void ValidRange(int64_t off, int64_t S, int64_t W, int64_t OW, int64_t* lo,
                       int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + S - 1) / S;
  int64_t h = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / S + 1;
  h = std::min(h, OW);
  *lo = std::min(l, h);
  *hi = h;
}

}  // namespace

void Im2Col(Context*, const float* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* col) {
  const int64_t KK = g.KH * g.KW, R = g.C * KK;
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const int64_t items = R * batch;
#pragma omp parallel for schedule(static) if (R * ld > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t r = it / batch, b = it % batch;
    const int64_t c = r / KK, kh = (r % KK) / g.KW, kw = r % g.KW;
    const float* plane = x + (b * g.C + c) * g.H * g.W;
    float* dst = col + r * ld + b * cols_img;
    const int64_t off = kw * g.DW - g.PL;
    int64_t lo, hi;
    ValidRange(off, g.SW, g.W, g.OW, &lo, &hi);
    for (int64_t i = 0; i < rows; i++, dst += g.OW) {
      const int64_t ih = (row0 + i) * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) {
        std::memset(dst, 0, sizeof(float) * g.OW);
        continue;
      }
      const float* src = plane + ih * g.W + off;
      for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0.f;
      if (g.SW == 1) {
        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow];
      } else {
        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * g.SW];
      }
      for (int64_t ow = hi; ow < g.OW; ow++) dst[ow] = 0.f;
    }
  }
}

void Col2Im(Context*, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* x) {
  const int64_t KK = g.KH * g.KW;
  const int64_t cols_img = rows * g.OW, ld = batch * cols_img;
  const int64_t items = batch * g.C;  // one input plane each: no two items write one cell
#pragma omp parallel for schedule(static) if (g.C * KK * ld > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t b = it / g.C, c = it % g.C;
    float* plane = x + it * g.H * g.W;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      for (int64_t kw = 0; kw < g.KW; kw++) {
        const float* src = col + ((c * g.KH + kh) * g.KW + kw) * ld + b * cols_img;
        const int64_t off = kw * g.DW - g.PL;
        int64_t lo, hi;
        ValidRange(off, g.SW, g.W, g.OW, &lo, &hi);
        for (int64_t i = 0; i < rows; i++, src += g.OW) {
          const int64_t ih = (row0 + i) * g.SH - g.PT + kh * g.DH;
          if (ih < 0 || ih >= g.H) continue;
          float* dst = plane + ih * g.W + off;
          if (g.SW == 1) {
            for (int64_t ow = lo; ow < hi; ow++) dst[ow] += src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ow++) dst[ow * g.SW] += src[ow];
          }
        }
      }
    }
  }
}

// TODO(blas): unify with kernels::cpu::Gemm of the blas family once it lands.
void ConvGemm(Context*, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  if (M == 0 || N == 0) return;
  scipy_cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, static_cast<blasint>(M),
                    static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
                    static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                    static_cast<blasint>(ldc));
}

void ConvScatter(Context*, const float* src, const float* bias, int64_t batch,
                 int64_t channels, int64_t hw, float* dst) {
  const int64_t items = batch * channels;
#pragma omp parallel for schedule(static) if (items * hw > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t b = it / channels, c = it % channels;
    const float* s = src + (c * batch + b) * hw;
    float* d = dst + it * hw;
    const float v = bias ? bias[c] : 0.f;
    for (int64_t i = 0; i < hw; i++) d[i] = s[i] + v;
  }
}

void ConvGather(Context*, const float* src, int64_t batch, int64_t channels, int64_t hw,
                float* dst) {
  const int64_t items = batch * channels;
#pragma omp parallel for schedule(static) if (items * hw > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t c = it / batch, b = it % batch;
    const float* s = src + (b * channels + c) * hw;
    float* d = dst + it * hw;
    for (int64_t i = 0; i < hw; i++) d[i] = s[i];
  }
}

void ConvBiasGrad(Context*, const float* dy, int64_t batch, int64_t channels, int64_t hw,
                  float* db) {
#pragma omp parallel for schedule(static) if (batch * channels * hw > MS_OMP_MIN)
  for (int64_t c = 0; c < channels; c++) {
    double acc = 0;
    for (int64_t b = 0; b < batch; b++) {
      const float* s = dy + (b * channels + c) * hw;
      float part = 0.f;
#pragma omp simd reduction(+ : part)
      for (int64_t i = 0; i < hw; i++) part += s[i];
      acc += part;
    }
    db[c] = static_cast<float>(acc);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
