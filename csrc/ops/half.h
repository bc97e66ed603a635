// Float16 storage, float32 arithmetic. Families with float16 kernels (GEMM, convolution in
// the GPU's plan, pooling, batch norm, the fused optimizers, and the elementwise, reduction,
// softmax and layout families) read and write float16 tensors themselves, computing in float32
// and rounding each result once. Where they have none for a combination (depthwise and
// mixed-dtype convolutions, convolutions in the CPU's plan, some mixes of float16 and float32
// operands), the op runs the float32 op on float32 copies (ToF32) and hands back float16
// results (ToHalf, CastInto for tensors updated in place): the same values, rounded once,
// at the cost of one cast per operand and result.
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
