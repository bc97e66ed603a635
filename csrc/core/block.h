// A block of device memory, allocated lazily on first use so that a recorded graph can
// plan when memory is really needed.
#pragma once

#include <cstddef>
#include <memory>

namespace minisinga {

class Device;

class Block {
 public:
  Block(Device* dev, size_t bytes) : dev_(dev), size_(bytes) {}
  ~Block() { Release(); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  size_t size() const { return size_; }
  Device* device() const { return dev_; }
  bool allocated() const { return ptr_ != nullptr; }
  // For writers: allocates (uninitialised) on first use.
  void* mutable_data();
  // For readers: a block never written reads as zeros.
  const void* data();
  // Returns the memory to the device pool; the next use allocates again.
  void Release();

 private:
  Device* dev_;
  size_t size_;
  void* ptr_ = nullptr;
};

using BlockPtr = std::shared_ptr<Block>;

}  // namespace minisinga
