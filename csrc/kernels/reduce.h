// Reduce family: one single-axis reduction over a contiguous (outer, r, inner) view,
// y[o, i] = reduce_k x[o, k, i]. Multi-axis reductions are successive passes (ops/reduce.cc).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {

enum class ReduceOp : int { kSum = 0, kMean = 1, kMax = 2, kMin = 3 };

namespace kernels {
namespace cpu {
// x has dtype in_dt, y has dtype out_dt: equal, or float16 <-> float32 (the float32 side is
// an intermediate of a multi-pass reduction). Sums accumulate in double (float inputs) or
// int64 (int32, stored wrapped to int32). kMean divides by r; r == 0 gives 0 for kSum and is
// rejected by the op otherwise. Max/min propagate NaN like numpy.
void Reduce(Context* ctx, ReduceOp op, DType in_dt, DType out_dt, const void* x, void* y,
            int64_t outer, int64_t r, int64_t inner);
// y[o, i] = index k of the first max (is_max) or min of x[o, :, i] (first NaN wins); r >= 1.
void ArgReduce(Context* ctx, bool is_max, DType dt, const void* x, int32_t* y, int64_t outer,
               int64_t r, int64_t inner);
}  // namespace cpu
namespace cuda {
void Reduce(Context* ctx, ReduceOp op, DType in_dt, DType out_dt, const void* x, void* y,
            int64_t outer, int64_t r, int64_t inner);
void ArgReduce(Context* ctx, bool is_max, DType dt, const void* x, int32_t* y, int64_t outer,
               int64_t r, int64_t inner);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
