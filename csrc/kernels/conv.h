// Convolution family (NCHW, float32): im2col / col2im and the GEMM they feed. The
// convolution algorithm itself (chunking, groups, bias) lives in ops/conv.cc and runs on
// every device through these kernels.
#pragma once

#include <cstdint>

#include "core/device.h"

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

namespace kernels {
namespace cpu {
// For `batch` images starting at x (image stride C*H*W) and the output rows
// [row0, row0 + rows): col[(c*KH + kh)*KW + kw][(b*rows + oh - row0)*OW + ow] =
// x[b][c][ih][iw], 0 where (ih, iw) falls in the padding. col has C*KH*KW rows of
// batch*rows*OW columns.
void Im2Col(Context* ctx, const float* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* col);
// The adjoint of Im2Col: ACCUMULATES every col entry into the x cell it was read from
// (padding entries are dropped). The caller zeroes x first when it wants a plain result.
void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* x);
// Row-major C = alpha * op(A) * op(B) + beta * C, op(A) M x K, op(B) K x N. Conv's own
// copy of the blas family's Gemm, to be unified with kernels::cpu::Gemm later.
void ConvGemm(Context* ctx, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
              float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
              float beta, float* C, int64_t ldc);
// dst[b][c][i] = src[c][b][i] (+ bias[c] when bias is not null): a chunk's [C, B, HW]
// GEMM result into NCHW. With batch == 1, src may equal dst (an in-place bias add).
void ConvScatter(Context* ctx, const float* src, const float* bias, int64_t batch,
                 int64_t channels, int64_t hw, float* dst);
// dst[c][b][i] = src[b][c][i]: NCHW gradients into the [C, B, HW] layout of a GEMM operand.
void ConvGather(Context* ctx, const float* src, int64_t batch, int64_t channels, int64_t hw,
                float* dst);
// db[c] = sum over b, i of dy[b][c][i] (dy is N x C x HW), written (not accumulated).
void ConvBiasGrad(Context* ctx, const float* dy, int64_t batch, int64_t channels, int64_t hw,
                  float* db);
}  // namespace cpu
namespace cuda {
void Im2Col(Context* ctx, const float* x, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* col);
void Col2Im(Context* ctx, const float* col, int64_t batch, const ConvGeom& g, int64_t row0,
            int64_t rows, float* x);
void ConvGemm(Context* ctx, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
              float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
              float beta, float* C, int64_t ldc);
void ConvScatter(Context* ctx, const float* src, const float* bias, int64_t batch,
                 int64_t channels, int64_t hw, float* dst);
void ConvGather(Context* ctx, const float* src, int64_t batch, int64_t channels, int64_t hw,
                float* dst);
void ConvBiasGrad(Context* ctx, const float* dy, int64_t batch, int64_t channels, int64_t hw,
                  float* db);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
