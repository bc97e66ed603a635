// 2-D max / average pooling on NCHW float32 or float16 tensors (1-D pooling is H = 1).
#pragma once

#include <optional>
#include <tuple>

#include "core/tensor.h"
#include "ops/conv.h"

namespace minisinga {
namespace ops {

// x (N, C, H, W) -> (y (N, C, OH, OW), argmax indices (int32, same shape, ih*W + iw within
// the plane, -1 for a window entirely in the padding) when is_max, else none).
// padding is (top, bottom, left, right) or (h, w); OH = (H + top + bottom - KH) / SH + 1.
std::tuple<Tensor, std::optional<Tensor>> Pool2d(const Tensor& x, const Ints& kernel,
                                                 const Ints& stride, const Ints& padding,
                                                 bool is_max, bool count_include_pad);
// dx (x_shape) from dy; max pooling needs the indices Pool2d returned.
Tensor Pool2dBackward(const Tensor& dy, const Shape& x_shape,
                      const std::optional<Tensor>& indices, const Ints& kernel,
                      const Ints& stride, const Ints& padding, bool is_max,
                      bool count_include_pad);

}  // namespace ops
}  // namespace minisinga
