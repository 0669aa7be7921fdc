// Router forward/backward on top of the backend's router ops.
#include "models/moe/router.h"

#include "models/linear.h"

namespace moe::models {

void Router::forward(ops::Backend& be, const Tensor& x, const Tensor& bias, Routing& r) {
  const int64_t n = x.dim(0), M = weight_->shape[0], K = opt_.top_k;
  DType dt = x.dtype();
  Device dev = x.device();
  r.logits = reuse(r.logits, {n, M}, dt, dev);
  r.gates = reuse(r.gates, {n, M}, dt, dev);
  r.idx = reuse(r.idx, {n, K}, DType::I32, dev);
  r.w = reuse(r.w, {n, K}, dt, dev);
  r.stats = reuse(r.stats, {M + 1}, dt, dev);
  linear_forward(be, x, weight_->value, r.logits, mult_);
  be.router_forward(r.logits, bias, opt_, r.gates, r.idx, r.w, r.stats);
}

void Router::backward(ops::Backend& be, const Tensor& x, const Routing& r, const Tensor& dw,
                      const Tensor& aux_coef, double z_coef, Tensor& dx) {
  dlogits_ = reuse(dlogits_, r.logits.shape(), r.logits.dtype(), r.logits.device());
  be.router_backward(r.logits, r.gates, r.idx, r.w, dw, aux_coef, z_coef, opt_, dlogits_);
  linear_backward(be, x, weight_->value, dlogits_, &dx, weight_->grad, mult_, /*accumulate=*/true);
}

}  // namespace moe::models
