// BLAS ops on Tensors: numpy-style matmul over float32 with transposes, scaling and
// accumulation, all lowered onto the Gemm / GemmStridedBatched kernels.
#pragma once

#include <optional>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// out = alpha * op(a) @ op(b) + beta * out, where op() transposes the last two axes when
// trans_a / trans_b is set. Shapes follow numpy.matmul: 1-d operands are vectors (a as a row,
// b as a column, the axis dropped from the result), leading axes are batch axes broadcast
// against each other. beta != 0 accumulates into `out`, which it requires. float32 only.
Tensor Matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              double alpha = 1.0, double beta = 0.0, std::optional<Tensor> out = std::nullopt);

}  // namespace ops
}  // namespace minisinga
