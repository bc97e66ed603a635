// Casting between dtypes (semantics in kernels/cast.h).
#pragma once

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// A new tensor on x's device holding x converted to `dtype` (a copy even when equal).
Tensor AsType(const Tensor& x, DType dtype);
// dst <- src converted to dst's dtype (same shape and device; nothing to do when src is dst).
void CastInto(const Tensor& dst, const Tensor& src);

}  // namespace ops
}  // namespace minisinga
