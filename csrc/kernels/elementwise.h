// Elementwise family: unary ops with scalar parameters, binary ops with numpy
// broadcasting, where(), fill. Declared once; implemented in cpu/ and cuda/.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/elementwise_ops.h"

namespace minisinga {

#define MS_ENUM_ENTRY(Name, expr) k##Name,
enum class UnaryOp : int { MS_UNARY_OPS(MS_ENUM_ENTRY) kCount };
enum class BinaryOp : int { MS_BINARY_OPS(MS_ENUM_ENTRY) kCount };
#undef MS_ENUM_ENTRY

constexpr int kMaxDims = 8;

// Output shape and per-input element strides (0 on broadcast axes), with adjacent axes
// merged wherever every operand allows; `ndim` >= 1.
struct StridedPlan {
  int ndim = 1;
  int nin = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {1};
  int64_t stride[3][kMaxDims] = {};
};

namespace kernels {
namespace cpu {
void Unary(Context* ctx, UnaryOp op, DType dt, const void* x, void* y, int64_t n, double a,
           double b);
void Binary(Context* ctx, BinaryOp op, DType dt, const void* x, const void* y, void* out,
            const StridedPlan& plan);
void Where(Context* ctx, DType cond_dt, DType dt, const void* cond, const void* x,
           const void* y, void* out, const StridedPlan& plan);
void Fill(Context* ctx, DType dt, void* out, int64_t n, double value);
}  // namespace cpu
namespace cuda {
void Unary(Context* ctx, UnaryOp op, DType dt, const void* x, void* y, int64_t n, double a,
           double b);
void Binary(Context* ctx, BinaryOp op, DType dt, const void* x, const void* y, void* out,
            const StridedPlan& plan);
void Where(Context* ctx, DType cond_dt, DType dt, const void* cond, const void* x,
           const void* y, void* out, const StridedPlan& plan);
void Fill(Context* ctx, DType dt, void* out, int64_t n, double value);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
