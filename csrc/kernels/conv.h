// Convolution family (NCHW): im2col / col2im, the GEMM they feed, NCHW <-> GEMM layout
// passes (float32 and float16), and direct depthwise kernels (float32). The convolution
// algorithm itself (chunking, groups, bias, which path) lives in ops/conv.cc and runs on
// every device through these.
#pragma once

#include <cstdint>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {

// Geometry of one 2-D convolution (or pooling) window sweep over a C x H x W image.
// Padding is asymmetric: top/bottom rows, left/right columns of implicit zeros.
struct ConvGeom {
  int64_t C = 0, H = 0, W = 0;      // input channels and size
  int64_t KH = 1, KW = 1;           // kernel size
  int64_t SH = 1, SW = 1;           // stride
  int64_t PT = 0, PB = 0, PL = 0, PR = 0;  // padding top, bottom, left, right
  int64_t DH = 1, DW = 1;           // dilation
  int64_t OH = 0, OW = 0;           // output size
};

// Output columns [lo, hi) whose input column ow*S + off lies inside [0, W) (0 <= ow < OW).
MS_HD void ValidRange(int64_t off, int64_t S, int64_t W, int64_t OW, int64_t* lo,
                      int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + S - 1) / S;
  int64_t h = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / S + 1;
  h = h < OW ? h : OW;
  *lo = l < h ? l : h;
  *hi = h;
}

// For each kernel column kw: the input column offset (ow*SW + off) and the output columns
// [lo, hi) for which it lies inside the image; the same for every row and plane.
struct ColRange {
  int64_t off, lo, hi;
};
inline std::vector<ColRange> ColRanges(const ConvGeom& g) {
  std::vector<ColRange> r(g.KW);
  for (int64_t kw = 0; kw < g.KW; kw++) {
    r[kw].off = kw * g.DW - g.PL;
    ValidRange(r[kw].off, g.SW, g.W, g.OW, &r[kw].lo, &r[kw].hi);
  }
  return r;
}

namespace kernels {
// Declared once for both namespaces (cpu, cuda). The layout kernels also take float16
// tensors (T = half_t) for the float16 convolution: its col matrices and [C, B, HW] operands
// are float16 where a GEMM reads them and float32 where a GEMM writes them, so every sum is
// rounded to float16 once.
#define MS_CONV_KERNELS                                                                       \
  /* For `batch` images starting at x (image stride C*H*W) and the output rows              \
     [row0, row0 + rows): col[(c*KH + kh)*KW + kw][(b*rows + oh - row0)*OW + ow] =          \
     x[b][c][ih][iw], 0 where (ih, iw) falls in the padding. col has C*KH*KW rows of        \
     batch*rows*OW columns. */                                                              \
  void Im2Col(Context* ctx, const float* x, int64_t batch, const ConvGeom& g, int64_t row0, \
              int64_t rows, float* col);                                                    \
  void Im2Col(Context* ctx, const half_t* x, int64_t batch, const ConvGeom& g, int64_t row0, \
              int64_t rows, half_t* col);                                                   \
  /* The adjoint of Im2Col: sums every col entry into the x cell it was read from (padding  \
     entries are dropped; a float16 cell is summed in float32 and rounded once per call, so \
     once per band of rows where a huge image is split). With `accumulate` the sums are     \
     added to x (bands of one image); without, x's `batch` images are written whole (zero    \
     where no entry lands), so the caller need not zero them first. */                      \
  void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0, \
              int64_t rows, bool accumulate, float* x);                                     \
  void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0, \
              int64_t rows, bool accumulate, half_t* x);                                    \
  /* dst[b][c][i] = src[c][b][i] (+ bias[c] when bias is not null): a chunk's [C, B, HW]    \
     GEMM result into NCHW. With batch == 1, src may equal dst (an in-place bias add). */   \
  void ConvScatter(Context* ctx, const float* src, const float* bias, int64_t batch,        \
                   int64_t channels, int64_t hw, float* dst);                               \
  void ConvScatter(Context* ctx, const float* src, const half_t* bias, int64_t batch,       \
                   int64_t channels, int64_t hw, half_t* dst);                              \
  void ConvScatter(Context* ctx, const half_t* src, const half_t* bias, int64_t batch,      \
                   int64_t channels, int64_t hw, half_t* dst);                              \
  /* dst[c][b][i] = src[b][c][i]: NCHW gradients into the [C, B, HW] layout of a GEMM       \
     operand. */                                                                            \
  void ConvGather(Context* ctx, const float* src, int64_t batch, int64_t channels,          \
                  int64_t hw, float* dst);                                                  \
  void ConvGather(Context* ctx, const half_t* src, int64_t batch, int64_t channels,         \
                  int64_t hw, half_t* dst);                                                 \
  /* db[c] = sum over b, i of dy[b][c][i] (dy is N x C x HW), written (not accumulated);    \
     summed in double, rounded once. */                                                     \
  void ConvBiasGrad(Context* ctx, const float* dy, int64_t batch, int64_t channels,         \
                    int64_t hw, float* db);                                                 \
  void ConvBiasGrad(Context* ctx, const half_t* dy, int64_t batch, int64_t channels,        \
                    int64_t hw, half_t* db);                                                \
  /* Depthwise convolution (groups == C, one input channel per group), computed directly:   \
     output channel co = c*multiplier + j reads input channel c with the KH x KW filter     \
     w[co]. y gets bias[co] added when bias is not null. All three write their output. */   \
  void DepthwiseConv2d(Context* ctx, const float* x, const float* w, const float* bias,     \
                       int64_t batch, const ConvGeom& g, int64_t multiplier, float* y);     \
  void DepthwiseConv2dBackwardData(Context* ctx, const float* dy, const float* w,           \
                                   int64_t batch, const ConvGeom& g, int64_t multiplier,    \
                                   float* dx);                                              \
  void DepthwiseConv2dBackwardWeight(Context* ctx, const float* dy, const float* x,         \
                                     int64_t batch, const ConvGeom& g, int64_t multiplier,  \
                                     float* dw);

namespace cpu {
MS_CONV_KERNELS
}  // namespace cpu
namespace cuda {
MS_CONV_KERNELS
}  // namespace cuda
#undef MS_CONV_KERNELS
}  // namespace kernels

}  // namespace minisinga
