// A shaped view into reference-counted memory on one device. Row-major, contiguous: views
// (reshape, a range of rows) share storage; nothing here computes (ops live in src/ops).
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "src/core/dtype.h"
#include "src/core/error.h"

namespace moe {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw memory for tensors. The CUDA backend registers its allocator at start-up so that core
// does not depend on CUDA.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  ~Storage();
};

using DeviceAlloc = void* (*)(size_t bytes);
using DeviceFree = void (*)(void* ptr);
void register_device_allocator(DeviceAlloc alloc, DeviceFree free);
// Copies bytes between any two devices (CUDA copies go through the registered function).
using DeviceCopy = void (*)(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void register_device_copy(DeviceCopy copy);
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// Zeroes device memory in stream order (no host buffer, no wait): registered by the CUDA backend.
using DeviceMemset = void (*)(void* dst, size_t bytes);
void register_device_memset(DeviceMemset memset);

// What crossed between host and device, and how often the host waited for the device: counted
// by copy_bytes and by the CUDA backend (synchronize, status reads, staged uploads), reported
// per step by `moe bench step --profile`. Counters of this process; never reset behind a caller.
struct TransferStats {
  int64_t host_syncs = 0;
  int64_t h2d_bytes = 0, d2h_bytes = 0;
};
TransferStats transfer_stats();
void count_host_sync();
void count_transfer(Device dst, Device src, size_t bytes);

// Bytes held by live tensor storage on a device, and the most held at once since the last
// reset_tensor_peak: what the memory estimate is checked against (memory_estimate_test.cpp).
struct TensorBytes {
  int64_t live = 0, peak = 0;
};
TensorBytes tensor_bytes(Device device);
void reset_tensor_peak(Device device);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::CPU);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  void* raw() const { return static_cast<char*>(storage_->ptr) + offset_; }
  template <class T>
  T* data() const {
    MOE_CHECK(dtype_ == dtype_of<T>(), "tensor is ", dtype_name(dtype_), ", asked for ",
              dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }

  // Same storage, new shape with the same element count.
  Tensor view(const Shape& shape) const;
  // Same storage from this view's start, any shape that fits what the storage holds from there
  // (a buffer grown once serves every smaller request after it: models/linear.h reuse).
  Tensor within(const Shape& shape) const;
  size_t capacity_bytes() const { return storage_ ? storage_->bytes - offset_ : 0; }
  // Rows [begin, end) of the first dimension.
  Tensor rows(int64_t begin, int64_t end) const;
  // Deep copy, optionally to another device.
  Tensor clone() const { return to(device_); }
  Tensor to(Device device) const;
  // Copies src's bytes into this tensor (same shape and dtype; devices may differ).
  void copy_from(const Tensor& src);
  // Zero every byte (CPU or device).
  void zero();

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

}  // namespace moe
