// The dense GELU MLP of the blocks without an MoE layer (moe.stride > 1, the MSSP paper's
// model): y = m_down * GELU(m_up * x W_up^T) W_down^T, width F = model.mlp_width. Like
// Attention, the GEMMs run in the dtype of the weights' compute copies (bf16 under mixed
// precision) and x, dy are cast in.
#pragma once
#include "src/config/config.h"
#include "src/ops/backend.h"
#include "src/optim/params.h"

namespace moe::models {

// The GELU of the dense MLPs and of GELU experts (config::exact_gelu): the erf form for
// moe.activation = "gelu", as the paper's nn.GELU(); the tanh form for "gelu_tanh", and for the
// dense MLPs beside SwiGLU experts, which computed it before "gelu" became exact and still do.
inline ops::Gelu gelu_form(const config::MoeConfig& m) {
  return config::exact_gelu(m) ? ops::Gelu::Erf : ops::Gelu::Tanh;
}

class DenseMlp {
 public:
  DenseMlp(optim::Param* up, optim::Param* down, double up_mult, double down_mult, ops::Gelu gelu)
      : up_(up), down_(down), up_mult_(up_mult), down_mult_(down_mult), gelu_(gelu) {}
  // x (n, N) -> y (n, N).
  void forward(ops::Backend& be, const Tensor& x, Tensor& y);
  // dy (n, N) -> dx (n, N) (written); weight gradients added.
  void backward(ops::Backend& be, const Tensor& dy, Tensor& dx);

 private:
  optim::Param *up_, *down_;  // (F, N), (N, F)
  double up_mult_, down_mult_;
  ops::Gelu gelu_;
  Tensor x_, h_, a_;          // saved: the input, the pre-activation (n, F), GELU of it
  Tensor xa_, dya_, da_, dh_;  // scratch
};

}  // namespace moe::models
