// Tensor: a contiguous row-major view (shape, dtype, offset) of a device Block.
#pragma once

#include <memory>

#include "core/block.h"
#include "core/common.h"
#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {

// What a kernel closure captures: raw, non-owning. The owning BlockPtrs travel in
// Exec's reads/writes, so a recorded graph alone decides when memory can be released.
struct TensorRef {
  Block* block = nullptr;
  size_t offset = 0;  // bytes
  Shape shape;
  DType dtype = DType::kFloat32;

  int64_t numel() const { return Numel(shape); }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(static_cast<const char*>(block->data()) + offset);
  }
  template <typename T>
  T* mutable_data() const {
    return reinterpret_cast<T*>(static_cast<char*>(block->mutable_data()) + offset);
  }
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(const Shape& shape, Device* dev, DType dtype = DType::kFloat32);

  const Shape& shape() const { return shape_; }
  int64_t shape(int axis) const;  // negative axes count from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return Numel(shape_); }
  size_t nbytes() const { return numel() * SizeOf(dtype_); }
  DType dtype() const { return dtype_; }
  Device* device() const { return dev_; }
  const BlockPtr& block() const { return block_; }
  size_t offset() const { return offset_; }
  bool defined() const { return block_ != nullptr; }
  TensorRef ref() const { return TensorRef{block_.get(), offset_, shape_, dtype_}; }

  // A view with another shape (same number of elements); one dim may be -1.
  Tensor Reshape(const Shape& shape) const;
  // A view of rows [start, stop) along axis 0.
  Tensor SliceRows(int64_t start, int64_t stop) const;

  std::string Repr() const;

 private:
  Shape shape_;
  DType dtype_ = DType::kFloat32;
  Device* dev_ = nullptr;
  BlockPtr block_;
  size_t offset_ = 0;
};

// Normalises `axis` into [0, ndim), with a clear error naming `op` when out of range.
int NormAxis(int64_t axis, int ndim, const char* op);

// Checks shared by the ops: same device, dtype in the allowed set.
void CheckSameDevice(const char* op, const Tensor& a, const Tensor& b);
void CheckDType(const char* op, const Tensor& t, std::initializer_list<DType> allowed,
                const char* what = "input");
void CheckFloat(const char* op, const Tensor& t, const char* what = "input");

// For inputs only the device can check (labels, indices), with a kernel that writes an int32
// `flag`, non-zero when the input is bad. In the op's closure after that kernel,
// RaiseIfFlagged raises `msg` at once on a CPU (its flag is host memory), eagerly or in a graph
// replay; after Exec, CheckFlag reads a GPU's flag and raises, or while a graph records
// registers the flag with the device (Device::AddFaultFlag) to be read after replays.
void RaiseIfFlagged(Context* ctx, const int32_t* flag, const std::string& msg);
void CheckFlag(const Tensor& flag, const std::string& msg);

}  // namespace minisinga
