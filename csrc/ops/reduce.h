// Reductions on Tensors: sum/mean/max/min over any set of axes, argmax/argmin along one
// axis, and sum_to_shape (the gradient of numpy broadcasting).
#pragma once

#include <optional>
#include <vector>

#include "core/tensor.h"
#include "kernels/reduce.h"

namespace minisinga {
namespace ops {

using Axes = std::optional<std::vector<int64_t>>;

// Reduces x over `axes` (nullopt: all; negative allowed; duplicates rejected; an empty list
// gives a copy). Output dtype is x's. Mean rejects int32; mean/max/min reject reducing over
// zero elements (unless the output is empty too).
Tensor Reduce(ReduceOp op, const Tensor& x, const Axes& axes, bool keepdims);
Tensor ReduceSum(const Tensor& x, const Axes& axes, bool keepdims);
Tensor ReduceMean(const Tensor& x, const Axes& axes, bool keepdims);
Tensor ReduceMax(const Tensor& x, const Axes& axes, bool keepdims);
Tensor ReduceMin(const Tensor& x, const Axes& axes, bool keepdims);

// Index (int32) of the first maximum / minimum along `axis`.
Tensor ArgMax(const Tensor& x, int64_t axis, bool keepdims);
Tensor ArgMin(const Tensor& x, int64_t axis, bool keepdims);

// Sums x down to `shape`, which must broadcast to x.shape (numpy rules): over the leading
// extra axes and over the axes where `shape` has 1. Always a new tensor.
Tensor SumToShape(const Tensor& x, const Shape& shape);

}  // namespace ops
}  // namespace minisinga
