// Pooling family (NCHW, float32 and float16): max pooling with argmax indices and average
// pooling, forward and backward. Windows use ConvGeom (dilation 1); g.C is ignored: the
// kernels see `planes` independent H x W planes (N*C of them). float16 tensors are loaded as
// float32 and every result is a float32 value rounded once to float16 (sums included), so it
// equals the float32 kernel's on the same values, rounded.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/conv.h"

namespace minisinga {

namespace kernels {
// Declared once for both namespaces (cpu, cuda).
#define MS_POOL_KERNELS                                                                       \
  /* y = max over each window's cells inside the image (padding never wins); idx = the      \
     winner's ih*W + iw within its plane, first one on ties, first NaN over numbers; a      \
     window with no cell inside the image gives y = 0, idx = -1. */                         \
  void MaxPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g, float* y,  \
                 int32_t* idx);                                                             \
  void MaxPool2d(Context* ctx, const half_t* x, int64_t planes, const ConvGeom& g,          \
                 half_t* y, int32_t* idx);                                                  \
  /* y = sum of each window's cells inside the image / (KH*KW if count_include_pad else the \
     number of those cells; 0 when there are none). */                                      \
  void AvgPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g,           \
                 bool count_include_pad, float* y);                                         \
  void AvgPool2d(Context* ctx, const half_t* x, int64_t planes, const ConvGeom& g,          \
                 bool count_include_pad, half_t* y);                                        \
  /* dx (written, not accumulated): each dy goes to the cell idx names (idx outside the     \
     plane, e.g. -1, is skipped). On CUDA, an idx outside its own window (never made by     \
     MaxPool2d) is added to the float16 cell afterwards, rounded once more. */              \
  void MaxPool2dBackward(Context* ctx, const float* dy, const int32_t* idx, int64_t planes, \
                         const ConvGeom& g, float* dx);                                     \
  void MaxPool2dBackward(Context* ctx, const half_t* dy, const int32_t* idx,                \
                         int64_t planes, const ConvGeom& g, half_t* dx);                    \
  /* dx (written): each dy spread over its window's cells as in AvgPool2d. */              \
  void AvgPool2dBackward(Context* ctx, const float* dy, int64_t planes, const ConvGeom& g,  \
                         bool count_include_pad, float* dx);                                \
  void AvgPool2dBackward(Context* ctx, const half_t* dy, int64_t planes, const ConvGeom& g, \
                         bool count_include_pad, half_t* dx);

namespace cpu {
MS_POOL_KERNELS
}  // namespace cpu
namespace cuda {
MS_POOL_KERNELS
}  // namespace cuda
#undef MS_POOL_KERNELS
}  // namespace kernels

}  // namespace minisinga
