// y = mult * x W^T for a dense weight W (out, in), and its backward. The forward multiplier
// comes from the parameterization table; gradients carry it too.
#pragma once
#include "src/ops/backend.h"

namespace moe::models {

inline void linear_forward(ops::Backend& be, const Tensor& x, const Tensor& w, Tensor& y,
                           double mult) {
  be.gemm(x, false, w, true, y, mult, 0.0);
}

// dx (+)= mult * dy W (adds when accumulate); dW += mult * dy^T x.
inline void linear_backward(ops::Backend& be, const Tensor& x, const Tensor& w, const Tensor& dy,
                            Tensor* dx, Tensor& dw, double mult, bool accumulate) {
  if (dx) be.gemm(dy, false, w, false, *dx, mult, accumulate ? 1.0 : 0.0);
  be.gemm(dy, true, x, false, dw, mult, 1.0);
}

// A view of `shape` on t's storage when that storage (not just t's own shape) holds enough
// elements of this dtype and device, else a new tensor with 25% to spare. `t = reuse(t, ...)`
// keeps the grown storage, so per-step buffers of varying row counts (routed tokens) stop
// reallocating once they have seen their largest step.
inline Tensor reuse(Tensor& t, const Shape& shape, DType dtype, Device device) {
  int64_t need = shape_numel(shape);
  if (!t.defined() || t.dtype() != dtype || t.device() != device ||
      t.capacity_bytes() < size_t(need) * dtype_size(dtype)) {
    int64_t cap = std::max<int64_t>(need + need / 4, 1);
    t = Tensor::empty({cap}, dtype, device);
  }
  return t.within(shape);
}

// x in `dtype`: x itself when it already is, else x cast into buf (grown once, as reuse).
// Mixed precision crosses from the f32 residual stream into the bf16 GEMM operands here.
inline Tensor as_dtype(ops::Backend& be, const Tensor& x, DType dtype, Tensor& buf) {
  if (x.dtype() == dtype) return x;
  Tensor t = reuse(buf, x.shape(), dtype, x.device());
  be.cast(x, t);
  return t;
}

}  // namespace moe::models
