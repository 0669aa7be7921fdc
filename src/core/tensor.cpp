// Tensor storage: 64-byte aligned host memory, device memory through registered hooks.
#include "src/core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace moe {
namespace {
DeviceAlloc g_device_alloc = nullptr;  // set once by the CUDA backend at start-up
DeviceFree g_device_free = nullptr;
DeviceCopy g_device_copy = nullptr;
DeviceMemset g_device_memset = nullptr;
TransferStats g_transfers;  // process-wide, like the hooks: the tensor layer has no context
// Per device (CPU, CUDA); atomic because a data-loading thread may make tensors too.
std::atomic<int64_t> g_live[2], g_peak[2];

void count_storage(Device d, int64_t bytes) {
  const int i = d == Device::CPU ? 0 : 1;
  const int64_t now = g_live[i].fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = g_peak[i].load(std::memory_order_relaxed);
  while (now > peak && !g_peak[i].compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
}  // namespace

TensorBytes tensor_bytes(Device d) {
  const int i = d == Device::CPU ? 0 : 1;
  return {g_live[i].load(std::memory_order_relaxed), g_peak[i].load(std::memory_order_relaxed)};
}
void reset_tensor_peak(Device d) {
  const int i = d == Device::CPU ? 0 : 1;
  g_peak[i].store(g_live[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void register_device_memset(DeviceMemset memset) { g_device_memset = memset; }

TransferStats transfer_stats() { return g_transfers; }
void count_host_sync() { ++g_transfers.host_syncs; }
void count_transfer(Device dst, Device src, size_t bytes) {
  if (dst == Device::CUDA && src == Device::CPU) g_transfers.h2d_bytes += int64_t(bytes);
  if (dst == Device::CPU && src == Device::CUDA) g_transfers.d2h_bytes += int64_t(bytes);
}

void register_device_allocator(DeviceAlloc alloc, DeviceFree free) {
  g_device_alloc = alloc;
  g_device_free = free;
}
void register_device_copy(DeviceCopy copy) { g_device_copy = copy; }

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::CPU && src_dev == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  MOE_CHECK(g_device_copy, "no CUDA backend in this build");
  count_transfer(dst_dev, src_dev, bytes);
  if (dst_dev != src_dev) count_host_sync();  // the copy hook waits when host memory is involved
  g_device_copy(dst, dst_dev, src, src_dev, bytes);
}

Storage::~Storage() {
  if (!ptr) return;
  count_storage(device, -int64_t(bytes));
  if (device == Device::CPU) {
    std::free(ptr);
  } else if (g_device_free) {
    g_device_free(ptr);
  }
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ")";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) MOE_CHECK(d >= 0, "negative dimension in ", shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  size_t bytes = std::max<size_t>(t.nbytes(), 1);
  t.storage_->bytes = bytes;
  t.storage_->device = device;
  if (device == Device::CPU) {
    size_t rounded = (bytes + 63) / 64 * 64;
    t.storage_->ptr = std::aligned_alloc(64, rounded);
    MOE_CHECK(t.storage_->ptr, "out of host memory allocating ", rounded, " bytes");
  } else {
    MOE_CHECK(g_device_alloc, "no CUDA backend in this build");
    t.storage_->ptr = g_device_alloc(bytes);
  }
  count_storage(device, int64_t(bytes));
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::view(const Shape& shape) const {
  MOE_CHECK(shape_numel(shape) == numel(), "view ", shape_str(shape), " of ", shape_str(shape_));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::within(const Shape& shape) const {
  MOE_CHECK(defined() && shape_numel(shape) * dtype_size(dtype_) <= capacity_bytes(), "view ",
            shape_str(shape), " beyond the ", capacity_bytes(), " bytes of its storage");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  MOE_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows [", begin, ", ",
            end, ") of ", shape_str(shape_));
  Tensor t = *this;
  int64_t row = numel() / std::max<int64_t>(shape_[0], 1);
  t.offset_ += begin * row * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  copy_bytes(t.raw(), device, raw(), device_, nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  MOE_CHECK(src.numel() == numel() && src.dtype() == dtype_, "copy ", shape_str(src.shape()),
            " into ", shape_str(shape_));
  copy_bytes(raw(), device_, src.raw(), src.device(), nbytes());
}

void Tensor::zero() {
  if (numel() == 0) return;
  if (device_ == Device::CPU) {
    std::memset(raw(), 0, nbytes());
  } else {
    MOE_CHECK(g_device_memset, "no CUDA backend in this build");
    g_device_memset(raw(), nbytes());
  }
}

}  // namespace moe
