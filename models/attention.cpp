// Attention forward/backward.
#include "models/attention.h"

#include "models/linear.h"

namespace moe::models {

void Attention::forward(ops::Backend& be, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), N = x.dim(1);
  DType dt = x.dtype();
  Device dev = x.device();
  x_ = x;
  qkv_ = reuse(qkv_, {n, 3 * N}, dt, dev);
  probs_ = reuse(probs_, {s_.B, s_.H, s_.T, s_.T}, dt, dev);
  o_ = reuse(o_, {n, N}, dt, dev);
  linear_forward(be, x, qkv_w_->value, qkv_, qkv_mult_);
  be.attention_forward(qkv_, o_, probs_, s_.B, s_.T, s_.H, s_.scale);
  linear_forward(be, o_, out_w_->value, y, out_mult_);
}

void Attention::backward(ops::Backend& be, const Tensor& dy, Tensor& dx) {
  const int64_t n = dy.dim(0), N = dy.dim(1);
  DType dt = dy.dtype();
  Device dev = dy.device();
  do_ = reuse(do_, {n, N}, dt, dev);
  dqkv_ = reuse(dqkv_, {n, 3 * N}, dt, dev);
  linear_backward(be, o_, out_w_->value, dy, &do_, out_w_->grad, out_mult_, false);
  be.attention_backward(qkv_, probs_, do_, dqkv_, s_.B, s_.T, s_.H, s_.scale);
  linear_backward(be, x_, qkv_w_->value, dqkv_, &dx, qkv_w_->grad, qkv_mult_, false);
}

}  // namespace moe::models
