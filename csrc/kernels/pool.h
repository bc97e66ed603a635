// Pooling family (NCHW, float32): max pooling with argmax indices and average pooling,
// forward and backward. Windows use ConvGeom (dilation 1); g.C is ignored: the kernels see
// `planes` independent H x W planes (N*C of them).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "kernels/conv.h"

namespace minisinga {

namespace kernels {
namespace cpu {
// y = max over each window's cells inside the image (padding never wins); idx = the
// winner's ih*W + iw within its plane, first one on ties; a window with no cell inside
// the image gives y = 0, idx = -1.
void MaxPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g, float* y,
               int32_t* idx);
// y = sum of each window's cells inside the image / (KH*KW if count_include_pad else the
// number of those cells; 0 when there are none).
void AvgPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, float* y);
// dx (written, not accumulated): each dy goes to the cell idx names (idx outside the
// plane, e.g. -1, is skipped).
void MaxPool2dBackward(Context* ctx, const float* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, float* dx);
// dx (written): each dy spread over its window's cells as in AvgPool2d.
void AvgPool2dBackward(Context* ctx, const float* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, float* dx);
}  // namespace cpu
namespace cuda {
void MaxPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g, float* y,
               int32_t* idx);
void AvgPool2d(Context* ctx, const float* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, float* y);
void MaxPool2dBackward(Context* ctx, const float* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, float* dx);
void AvgPool2dBackward(Context* ctx, const float* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, float* dx);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
