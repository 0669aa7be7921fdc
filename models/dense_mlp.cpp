// Dense GELU MLP forward/backward.
#include "models/dense_mlp.h"

#include "models/linear.h"

namespace moe::models {

void DenseMlp::forward(ops::Backend& be, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), F = up_->shape[0];
  const DType dt = up_->compute.dtype();
  const Device dev = x.device();
  x_ = as_dtype(be, x, dt, xa_);
  h_ = reuse(h_, {n, F}, dt, dev);
  a_ = reuse(a_, {n, F}, dt, dev);
  linear_forward(be, x_, up_->compute, h_, up_mult_);
  be.gelu_forward(h_, a_, gelu_);
  linear_forward(be, a_, down_->compute, y, down_mult_);
}

void DenseMlp::backward(ops::Backend& be, const Tensor& dy, Tensor& dx) {
  const int64_t n = dy.dim(0), F = up_->shape[0];
  const DType dt = up_->compute.dtype();
  const Device dev = dy.device();
  da_ = reuse(da_, {n, F}, dt, dev);
  dh_ = reuse(dh_, {n, F}, dt, dev);
  const Tensor dya = as_dtype(be, dy, dt, dya_);
  linear_backward(be, a_, down_->compute, dya, &da_, down_->grad, down_mult_, false);
  be.gelu_backward(h_, da_, dh_, gelu_);
  linear_backward(be, x_, up_->compute, dh_, &dx, up_->grad, up_mult_, false);
}

}  // namespace moe::models
