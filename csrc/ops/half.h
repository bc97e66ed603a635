// Float16 storage, float32 arithmetic. The fused optimizers have float32 kernels; given
// float16 tensors, their ops run the float32 op on float32 copies (ToF32) and hand back
// float16 results (CastInto for tensors updated in place). Results equal the float32 op on
// the same values, rounded once to float16. Extra traffic: one cast per operand and result,
// on every device alike. GEMMs with float16 operands, convolutions in the GPU's plan, pooling
// and batch norm's activations run on float16 operands instead (kernels/blas.h, ops/conv.cc,
// kernels/pool.h, kernels/batchnorm.h), with float32 arithmetic rounded once; batch norm's
// float16 per-channel operands (C values) still go through float32 copies.
#pragma once

#include <optional>

#include "core/tensor.h"
#include "ops/cast.h"

namespace minisinga {
namespace ops {

inline bool IsHalf(const Tensor& t) { return t.dtype() == DType::kFloat16; }
inline bool IsHalf(const std::optional<Tensor>& t) { return t && IsHalf(*t); }

inline Tensor ToF32(const Tensor& t) { return IsHalf(t) ? AsType(t, DType::kFloat32) : t; }
inline std::optional<Tensor> ToF32(const std::optional<Tensor>& t) {
  return t ? std::optional<Tensor>(ToF32(*t)) : std::nullopt;
}
inline Tensor ToHalf(const Tensor& t) { return IsHalf(t) ? t : AsType(t, DType::kFloat16); }
// A float32 result r in the dtype of the operand it stands for.
inline Tensor Like(const Tensor& r, const Tensor& operand) {
  return IsHalf(operand) ? ToHalf(r) : r;
}

}  // namespace ops
}  // namespace minisinga
