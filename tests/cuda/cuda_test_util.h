// Helpers for the CUDA suite: the process's CUDA backend, host <-> device and f32 <-> bf16
// conversion, and the normalized error the op tests compare with. Every test skips itself
// (GTEST_SKIP) when no CUDA device is usable, so the suite passes on machines without a GPU.
#pragma once
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "src/ops/cuda/cuda_backend.h"
#include "tests/test_util.h"

namespace moe::test {

// One CUDA backend per process (the tensor hooks follow the latest backend), on the device of
// this rank (rank % devices); null without a device.
inline ops::gpu::CudaBackend* cuda_backend() {
  static std::unique_ptr<ops::Backend> b = [] {
    std::unique_ptr<ops::Backend> p;
    const int count = ops::cuda_device_count();
    if (count > 0) p = ops::make_cuda_backend(world().rank() % count);
    return p;
  }();
  return static_cast<ops::gpu::CudaBackend*>(b.get());
}

// Base fixture: skips without a GPU; otherwise makes sure the backend (and with it the device
// memory hooks that Tensor::empty(..., Device::CUDA) needs) exists.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ops::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    cuda_backend();
  }
  ops::gpu::CudaBackend& gpu() { return *cuda_backend(); }
};

// bf16 bits of a float, rounded to nearest even (the device's __float2bfloat16_rn); NaN stays NaN.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_value(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return bf16_value(bf16_bits(f)); }

// A host f32 tensor as an input of dtype `dt` on `dev`. On the CPU (the reference, which has no
// bf16) a bf16 input stays f32 but holds the bf16-rounded values, so both backends see the same
// numbers.
inline Tensor to_backend(const Tensor& host, Device dev, DType dt) {
  if (host.dtype() != DType::F32 || dt == DType::F32) return host.to(dev);
  MOE_CHECK(dt == DType::BF16, "to_backend: f32 or bf16");
  if (dev == Device::CPU) {
    Tensor r = host.clone();
    for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] = round_bf16(r.data<float>()[i]);
    return r;
  }
  Tensor b = Tensor::empty(host.shape(), DType::BF16, Device::CPU);
  auto* bits = static_cast<uint16_t*>(b.raw());
  for (int64_t i = 0; i < host.numel(); ++i) bits[i] = bf16_bits(host.data<float>()[i]);
  return b.to(dev);
}

// Any tensor back on the host; floating point as f32 (bf16 widened exactly), others as they are.
inline Tensor to_host(const Tensor& t) {
  Tensor h = t.to(Device::CPU);
  if (h.dtype() != DType::BF16) return h;
  Tensor f = Tensor::empty(h.shape(), DType::F32, Device::CPU);
  const auto* bits = static_cast<const uint16_t*>(h.raw());
  for (int64_t i = 0; i < h.numel(); ++i) f.data<float>()[i] = bf16_value(bits[i]);
  return f;
}

inline double value_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32:
      return t.data<float>()[i];
    case DType::F64:
      return t.data<double>()[i];
    case DType::I32:
      return t.data<int32_t>()[i];
    case DType::I64:
      return double(t.data<int64_t>()[i]);
    default:
      break;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// Normalized error sqrt(sum (a - b)^2 / sum b^2) of host tensors (ggml's test-backend-ops
// measure, as a relative L2 norm); infinite for a shape mismatch or a non-finite value in `a`
// where `b` is finite.
inline double normalized_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = value_at(a, i), y = value_at(b, i);
    if (std::isfinite(y) && !std::isfinite(x)) return std::numeric_limits<double>::infinity();
    if (!std::isfinite(y)) continue;
    num += (x - y) * (x - y);
    den += y * y;
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

// Deterministic integers in [0, hi) from a name.
inline std::vector<int32_t> rand_ints(int64_t n, int64_t hi, const std::string& name) {
  rng::Stream s(rng::make_key(3, name), 0);
  std::vector<int32_t> v(size_t(n), 0);
  for (auto& x : v) x = int32_t(s.next_below(uint64_t(hi)));
  return v;
}

// Bitwise equality of two tensors' bytes (same shape and dtype).
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ha = a.to(Device::CPU), hb = b.to(Device::CPU);
  return std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}

}  // namespace moe::test
