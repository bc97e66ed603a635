// Sparse all-reduce selection (kernels/select.h).
#pragma once

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// int32 indices, increasing, of the entries of float32 `v` (read flat) that a sparse
// all-reduce sends. topk: the ceil(spars * n) largest in magnitude (only the nonzero ones when
// fewer are nonzero; ties at the k-th magnitude in index order), spars in (0, 1]; else every
// entry with |v| >= spars. NaN entries are never sent. The count depends on the data, so it
// waits for the device and cannot be recorded in a graph.
Tensor SelectSparse(const Tensor& v, double spars, bool topk);

}  // namespace ops
}  // namespace minisinga
