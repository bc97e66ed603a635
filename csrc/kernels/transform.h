// Transform family: ops that move elements without arithmetic (transpose, slice, concat,
// split, pad, broadcast_to, take) plus the scatter-adds of their gradients and one_hot.
// Most of them lower onto one strided-copy kernel described by a CopyPlan.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/elementwise.h"  // kMaxDims

namespace minisinga {

// dst[sum i_d * dst_stride[d]] = src[sum i_d * src_stride[d]] for every index i over `shape`
// (strides in elements; a src stride of 0 broadcasts). Built by ops::MakeCopyPlan, which drops
// size-1 axes and merges axes that are contiguous in both operands; `ndim` >= 1.
struct CopyPlan {
  int ndim = 1;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {1};
  int64_t src_stride[kMaxDims] = {};
  int64_t dst_stride[kMaxDims] = {};
};

// Kernels, identical in both namespaces. `esize` is the element size in bytes (2 or 4).
//
// StridedCopy: the copy described by `plan`; the destinations must not overlap each other.
// Take: y[o, j, i] = x[o, idx[j], i] for o < outer, j < nidx, i < inner, with x's middle
//   axis of size n; negative indices count from the end. An index outside [-n, n) reads
//   nothing and yields zeros; *bad is written 1 if there was one, else 0.
// TakeBackward: dx[o, t, i] = sum over j with idx[j] == t (mod n) of dy[o, j, i], summed in
//   increasing j so the result is deterministic; dx is fully written. Out-of-range indices
//   are skipped and reported in *bad as for Take.
// OneHot: y[k, c] = (labels[k] == c) for k < n, c < depth; labels outside [0, depth) give a
//   zero row and set *bad to 1 (else 0).
// IndexRange: *bad = 1 if an idx[j], j < count, is outside [lo, hi), else 0 (labels checked
//   on the device while a graph replays).
namespace kernels {
namespace cpu {
void StridedCopy(Context* ctx, size_t esize, const void* src, void* dst, const CopyPlan& plan);
void Take(Context* ctx, size_t esize, const void* x, const int32_t* idx, void* y, int64_t outer,
          int64_t n, int64_t nidx, int64_t inner, int32_t* bad);
void TakeBackward(Context* ctx, DType dt, const void* dy, const int32_t* idx, void* dx,
                  int64_t outer, int64_t n, int64_t nidx, int64_t inner, int32_t* bad);
void OneHot(Context* ctx, DType dt, const int32_t* labels, int64_t n, int64_t depth, void* y,
            int32_t* bad);
void IndexRange(Context* ctx, const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                int32_t* bad);
}  // namespace cpu
namespace cuda {
void StridedCopy(Context* ctx, size_t esize, const void* src, void* dst, const CopyPlan& plan);
void Take(Context* ctx, size_t esize, const void* x, const int32_t* idx, void* y, int64_t outer,
          int64_t n, int64_t nidx, int64_t inner, int32_t* bad);
void TakeBackward(Context* ctx, DType dt, const void* dy, const int32_t* idx, void* dx,
                  int64_t outer, int64_t n, int64_t nidx, int64_t inner, int32_t* bad);
void OneHot(Context* ctx, DType dt, const int32_t* labels, int64_t n, int64_t depth, void* y,
            int32_t* bad);
void IndexRange(Context* ctx, const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                int32_t* bad);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
