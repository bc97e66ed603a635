// Elementwise ops on Tensors: shape/dtype/device checks, output allocation, Exec.
#pragma once

#include <optional>

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace minisinga {
namespace ops {

// numpy broadcasting of two shapes; `op` names the caller in the error.
Shape BroadcastShapes(const Shape& a, const Shape& b, const char* op);
// Strides of each input against `out` (inputs must broadcast to it), axes merged.
StridedPlan MakePlan(const Shape& out, const std::vector<Shape>& ins, const char* op);

Tensor Unary(UnaryOp op, const Tensor& x, double a = 0, double b = 0,
             std::optional<Tensor> out = std::nullopt);
Tensor Binary(BinaryOp op, const Tensor& x, const Tensor& y,
              std::optional<Tensor> out = std::nullopt);
Tensor Where(const Tensor& cond, const Tensor& x, const Tensor& y);
void Fill(const Tensor& t, double value);

const char* UnaryName(UnaryOp op);
const char* BinaryName(BinaryOp op);

}  // namespace ops
}  // namespace minisinga
