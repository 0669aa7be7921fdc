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

// Returns t if it already holds at least `shape` worth of elements of this dtype and device
// (as a view of that shape), else a new tensor. Lets per-step buffers of varying row counts
// (routed tokens) grow without reallocating every step.
inline Tensor reuse(Tensor& t, const Shape& shape, DType dtype, Device device) {
  int64_t need = shape_numel(shape);
  if (!t.defined() || t.dtype() != dtype || t.device() != device || t.numel() < need) {
    int64_t cap = std::max<int64_t>(need + need / 4, 1);
    t = Tensor::empty({cap}, dtype, device);
  }
  return t.view({t.numel()}).rows(0, need).view(shape);
}

}  // namespace moe::models
