// Transform ops: results are always materialised, contiguous tensors of any dtype.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/transform.h"

namespace minisinga {
namespace ops {

using Ints = std::vector<int64_t>;
using Pads = std::vector<std::pair<int64_t, int64_t>>;

// CopyPlan for `shape` with the given element strides; size-1 axes dropped, axes merged.
CopyPlan MakeCopyPlan(const Shape& shape, const Ints& src_stride, const Ints& dst_stride,
                      const char* op);
// Row-major element strides of a contiguous tensor of `shape`.
Ints ContiguousStrides(const Shape& shape);

// Axes permuted (perm[i] is the input axis of output axis i); perm None reverses them.
Tensor Transpose(const Tensor& x, const std::optional<Ints>& perm = std::nullopt);
// Joins tensors of one dtype and device whose shapes differ only along `axis`.
Tensor Concat(const std::vector<Tensor>& xs, int64_t axis);
// numpy basic slicing x[starts[k]:stops[k]:steps[k]] on axes[k] (default 0, 1, ...):
// negative indices count from the end, out-of-range bounds clamp, steps are positive.
Tensor Slice(const Tensor& x, const Ints& starts, const Ints& stops,
             const std::optional<Ints>& axes = std::nullopt,
             const std::optional<Ints>& steps = std::nullopt);
// Gradient of Slice: dy scattered into zeros of x_shape.
Tensor SliceBackward(const Tensor& dy, const Shape& x_shape, const Ints& starts,
                     const Ints& stops, const std::optional<Ints>& axes = std::nullopt,
                     const std::optional<Ints>& steps = std::nullopt);
// Pieces of sizes[k] along `axis` (the sizes add up to the axis length).
std::vector<Tensor> Split(const Tensor& x, const Ints& sizes, int64_t axis);
// Constant padding: pads[d] = (before, after) elements on axis d, all >= 0.
Tensor Pad(const Tensor& x, const Pads& pads, double value = 0.0);
// Gradient of Pad: the interior of dy.
Tensor PadBackward(const Tensor& dy, const Pads& pads);
// x repeated along broadcast axes to `shape` (numpy.broadcast_to, materialised).
Tensor BroadcastTo(const Tensor& x, const Shape& shape);
// numpy.take(x, indices, axis) with int32 indices of any shape; an index outside
// [-n, n) raises ValueError when the device runs eagerly (while recording it yields zeros).
Tensor Take(const Tensor& x, const Tensor& indices, int64_t axis);
// Gradient of Take: dy scatter-added into zeros of x_shape (repeated indices accumulate).
Tensor TakeBackward(const Tensor& dy, const Tensor& indices, int64_t axis, const Shape& x_shape);
// labels (int32, any shape) -> labels.shape + (depth,) with 1 at each label, else 0.
Tensor OneHot(const Tensor& labels, int64_t depth, DType dtype = DType::kFloat32);

}  // namespace ops
}  // namespace minisinga
