// Attention forward/backward.
#include "models/attention.h"

#include "models/linear.h"

namespace moe::models {

void Attention::forward(ops::Backend& be, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), N = x.dim(1);
  const DType dt = qkv_w_->compute.dtype();
  Device dev = x.device();
  x_ = as_dtype(be, x, dt, xa_);
  qkv_ = reuse(qkv_, {n, 3 * N}, dt, dev);
  o_ = reuse(o_, {n, N}, dt, dev);
  if (s_.qk_norm) {  // the projection kept for the norm's backward; q, k normed into qkv_
    qkv_raw_ = reuse(qkv_raw_, {n, 3 * N}, dt, dev);
    qk_rstd_ = reuse(qk_rstd_, {n, 2 * int64_t(s_.H)}, dt == DType::F64 ? dt : DType::F32, dev);
    linear_forward(be, x_, qkv_w_->compute, qkv_raw_, qkv_mult_);
    be.qk_norm_forward(qkv_raw_, qkv_, qk_rstd_, s_.H, s_.norm_eps);
  } else {
    linear_forward(be, x_, qkv_w_->compute, qkv_, qkv_mult_);
  }
  if (s_.rope) be.rope_forward(qkv_, s_.T, s_.H, s_.rope_base);
  fused_ = be.prefers_fused_attention() && N / s_.H <= 128;
  if (fused_) {  // no T x T: the rows' log-sum-exp (f32) is what the backward needs
    lse_ = reuse(lse_, {s_.B, s_.H, s_.T}, dt == DType::F64 ? dt : DType::F32, dev);
    be.flash_attention_forward(qkv_, o_, lse_, s_.B, s_.T, s_.H, s_.scale);
  } else {
    probs_ = reuse(probs_, {s_.B, s_.H, s_.T, s_.T}, dt, dev);
    be.attention_forward(qkv_, o_, probs_, s_.B, s_.T, s_.H, s_.scale);
  }
  linear_forward(be, o_, out_w_->compute, y, out_mult_);
}

void Attention::backward(ops::Backend& be, const Tensor& dy, Tensor& dx) {
  const int64_t n = dy.dim(0), N = dy.dim(1);
  const DType dt = qkv_w_->compute.dtype();
  Device dev = dy.device();
  do_ = reuse(do_, {n, N}, dt, dev);
  dqkv_ = reuse(dqkv_, {n, 3 * N}, dt, dev);
  const Tensor dya = as_dtype(be, dy, dt, dya_);
  linear_backward(be, o_, out_w_->compute, dya, &do_, out_w_->grad, out_mult_, false);
  if (fused_)
    be.flash_attention_backward(qkv_, o_, lse_, do_, dqkv_, s_.B, s_.T, s_.H, s_.scale);
  else
    be.attention_backward(qkv_, probs_, do_, dqkv_, s_.B, s_.T, s_.H, s_.scale);
  if (s_.rope) be.rope_backward(dqkv_, s_.T, s_.H, s_.rope_base);
  if (s_.qk_norm) be.qk_norm_backward(qkv_raw_, qk_rstd_, dqkv_, dqkv_, s_.H);
  linear_backward(be, x_, qkv_w_->compute, dqkv_, &dx, qkv_w_->grad, qkv_mult_, false);
}

}  // namespace moe::models
