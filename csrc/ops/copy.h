// Moving data: host <-> device, device <-> device, clone.
#pragma once

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// Copies `bytes` from host memory into t (sizes must match).
void CopyFromHost(const Tensor& t, const void* src, size_t bytes);
// Copies t into host memory; waits for the device. Fails while t is only recorded.
void CopyToHost(const Tensor& t, void* dst, size_t bytes);
// dst <- src: same shape and dtype, any two devices.
void Copy(const Tensor& dst, const Tensor& src);
Tensor Clone(const Tensor& t);
Tensor ToDevice(const Tensor& t, Device* dev);

}  // namespace ops
}  // namespace minisinga
