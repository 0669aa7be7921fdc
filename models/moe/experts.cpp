// Grouped expert FFN forward/backward.
#include "models/moe/experts.h"

#include "models/linear.h"

namespace moe::models {

void Experts::forward(ops::Backend& be, const Tensor& x, const std::vector<ops::Segment>& segs,
                      Tensor& y) {
  const int64_t m = x.dim(0), F = p_.up->shape[1];
  DType dt = x.dtype();
  Device dev = x.device();
  x_ = x;
  h_ = reuse(h_, {m, F}, dt, dev);
  a_ = reuse(a_, {m, F}, dt, dev);
  be.grouped_gemm_nt(x, p_.up->compute, segs, h_, p_.up_mult);
  if (swiglu()) {
    g_ = reuse(g_, {m, F}, dt, dev);
    be.grouped_gemm_nt(x, p_.gate->compute, segs, g_, p_.gate_mult);
    be.swiglu_forward(g_, h_, a_);
  } else {
    be.gelu_forward(h_, a_, p_.gelu);
  }
  be.grouped_gemm_nt(a_, p_.down->compute, segs, y, p_.down_mult);
}

void Experts::apply_one(ops::Backend& be, const Tensor& x, int e, Tensor& y) {
  const int64_t m = x.dim(0), F = p_.up->shape[1];
  std::vector<ops::Segment> seg = {{0, m, e}};
  Tensor h = Tensor::empty({m, F}, x.dtype(), x.device()), a = Tensor::empty({m, F}, x.dtype(), x.device());
  be.grouped_gemm_nt(x, p_.up->compute, seg, h, p_.up_mult);
  if (swiglu()) {
    Tensor g = Tensor::empty({m, F}, x.dtype(), x.device());
    be.grouped_gemm_nt(x, p_.gate->compute, seg, g, p_.gate_mult);
    be.swiglu_forward(g, h, a);
  } else {
    be.gelu_forward(h, a, p_.gelu);
  }
  be.grouped_gemm_nt(a, p_.down->compute, seg, y, p_.down_mult);
}

void Experts::backward(ops::Backend& be, const std::vector<ops::Segment>& segs, const Tensor& dy,
                       Tensor& dx) {
  const int64_t m = dy.dim(0), F = p_.up->shape[1];
  DType dt = dy.dtype();
  Device dev = dy.device();
  da_ = reuse(da_, {m, F}, dt, dev);
  dh_ = reuse(dh_, {m, F}, dt, dev);
  be.grouped_gemm_nn(dy, p_.down->compute, segs, da_, p_.down_mult, 0.0);
  be.grouped_gemm_tn(dy, a_, segs, p_.down->grad, p_.down_mult);
  if (swiglu()) {
    dg_ = reuse(dg_, {m, F}, dt, dev);
    be.swiglu_backward(g_, h_, da_, dg_, dh_);
    be.grouped_gemm_nn(dg_, p_.gate->compute, segs, dx, p_.gate_mult, 0.0);
    be.grouped_gemm_tn(dg_, x_, segs, p_.gate->grad, p_.gate_mult);
    be.grouped_gemm_nn(dh_, p_.up->compute, segs, dx, p_.up_mult, 1.0);
  } else {
    be.gelu_backward(h_, da_, dh_, p_.gelu);
    be.grouped_gemm_nn(dh_, p_.up->compute, segs, dx, p_.up_mult, 0.0);
  }
  be.grouped_gemm_tn(dh_, x_, segs, p_.up->grad, p_.up_mult);
}

}  // namespace moe::models
