// Casting between dtypes (semantics in kernels/cast.h).
#pragma once

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// A new tensor on x's device holding x converted to `dtype` (a copy even when equal).
Tensor AsType(const Tensor& x, DType dtype);

}  // namespace ops
}  // namespace minisinga
