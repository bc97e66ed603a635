// 2-D convolution on NCHW float32 tensors: im2col + GEMM per group, in chunks of images
// (or of output rows for large images) through a bounded device scratch buffer.
#pragma once

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/tensor.h"
#include "kernels/conv.h"

namespace minisinga {
namespace ops {

using Ints = std::vector<int64_t>;

// Window parameters shared with pooling, checked with errors naming `op`:
// a pair (h, w) of integers >= `min` (stride, dilation, kernel) ...
void CheckPair(const char* op, const char* what, const Ints& v, int64_t min);
// ... and padding (top, bottom, left, right), or (h, w) for symmetric padding, >= 0.
Ints ExpandPadding(const char* op, const Ints& padding);
// The geometry of a KH x KW window (dilated) sliding over the planes of an NCHW shape;
// fails when the window is larger than the padded input. `padding` is already expanded.
ConvGeom WindowGeom(const char* op, const Shape& x_shape, int64_t KH, int64_t KW,
                    const Ints& stride, const Ints& padding, const Ints& dilation);

// y[n, co] = b[co] + sum over the group's channels of w[co] correlated with x[n].
// x (N, C, H, W), w (Cout, C/groups, KH, KW), b (Cout,) or none -> (N, Cout, OH, OW).
Tensor Conv2d(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
              const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups);
// Gradient with respect to x of the convolution above, for dy (N, Cout, OH, OW).
Tensor Conv2dBackwardData(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                          const Ints& stride, const Ints& padding, const Ints& dilation,
                          int64_t groups);
// Gradient with respect to w, shape w_shape.
Tensor Conv2dBackwardWeight(const Tensor& dy, const Tensor& x, const Shape& w_shape,
                            const Ints& stride, const Ints& padding, const Ints& dilation,
                            int64_t groups);
// Gradient with respect to b: dy summed over N, H and W -> (Cout,).
Tensor Conv2dBackwardBias(const Tensor& dy);

// Makes CPU devices plan convolutions as GPUs do (wide chunks, strided-batched GEMMs), so
// tests can check the GPU's plan without a GPU; returns the previous setting.
bool SetConvGpuPlanOnCpu(bool on);

// For tests: the path a float32 convolution's forward pass (or with `weight_grad`, its weight
// gradient) takes on `dev` (the plan in ops/conv.cc; float16 ones never take "winograd",
// they use the same plan's im2col path instead): "depthwise", "winograd", "batched"
// (strided-batched GEMMs in NCHW, "batched-direct" for 1x1), "direct" (1x1 GEMMs on x
// itself), "chunks" (nb images per GEMM) or "bands" (rows of one image per GEMM).
std::string Conv2dPath(const Device* dev, const Shape& x_shape, const Shape& w_shape,
                       const Ints& stride, const Ints& padding, const Ints& dilation,
                       int64_t groups, bool weight_grad);

// ONNX auto_pad: the (top, bottom, left, right) padding that gives ceil(in / stride)
// outputs; mode "SAME_UPPER" puts the odd cell at the end, "SAME_LOWER" at the start.
std::tuple<int64_t, int64_t, int64_t, int64_t> Conv2dSamePadding(const Ints& in_hw,
                                                                 const Ints& kernel,
                                                                 const Ints& stride,
                                                                 const Ints& dilation,
                                                                 const std::string& mode);

}  // namespace ops
}  // namespace minisinga
