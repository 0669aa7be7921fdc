// Host-side helpers shared by the CUDA ops: argument checks (the same messages as the CPU
// ops), dtype dispatch over f32 / bf16, typed device pointers and launch sizes.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "src/core/tensor.h"
#include "src/ops/cuda/cuda_check.h"

namespace moe::ops::gpu {

using bf16 = __nv_bfloat16;

inline void check_dev(const Tensor& t, const char* what) {
  MOE_CHECK(t.defined() && t.device() == Device::CUDA, what, " must be a CUDA tensor");
}

inline void check_shape(const Tensor& t, const Shape& s, const char* what) {
  MOE_CHECK(t.shape() == s, what, " has shape ", shape_str(t.shape()), ", expected ", shape_str(s));
}

inline void check_same(const Tensor& a, const Tensor& b, const char* what) {
  check_dev(b, what);
  MOE_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), what, ": ", shape_str(a.shape()), " ",
            dtype_name(a.dtype()), " vs ", shape_str(b.shape()), " ", dtype_name(b.dtype()));
}

inline void check_dtype(const Tensor& t, DType d, const char* what) {
  MOE_CHECK(t.dtype() == d, what, " must be ", dtype_name(d), ", got ", dtype_name(t.dtype()));
}

// f32 or bf16 (what the CUDA backend computes in).
inline void check_float(const Tensor& t, const char* what) {
  MOE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, what,
            ": the CUDA backend supports f32 and bf16, got ", dtype_name(t.dtype()));
}

inline int as_int(int64_t v, const char* what) {
  MOE_CHECK(v >= 0 && v <= INT_MAX, what, " = ", v, " does not fit a 32-bit int");
  return static_cast<int>(v);
}

// Calls f(T{}) with T = float or bf16 according to `t`.
template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  if (t == DType::F32) {
    f(float{});
  } else if (t == DType::BF16) {
    f(bf16{});
  } else {
    MOE_CHECK(false, op, ": the CUDA backend supports f32 and bf16, got ", dtype_name(t));
  }
}

template <class T>
T* dptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

// Blocks for a grid-stride loop over n items (n > 0): enough to fill the GPU, capped so that
// the grid stays far inside the 2^31 - 1 limit.
inline unsigned grid_for(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, int64_t(1) << 20));
}

// Threads for kernels with one block per row of `cols` elements: a multiple of 32, at most 256.
inline int row_threads(int64_t cols) {
  if (cols <= 32) return 32;
  if (cols <= 64) return 64;
  if (cols <= 128) return 128;
  return 256;
}

// A temporary device buffer (freed in stream order when the tensor goes out of scope).
inline Tensor scratch(int64_t count, DType dt) { return Tensor::empty({count}, dt, Device::CUDA); }

}  // namespace moe::ops::gpu
