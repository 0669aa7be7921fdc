// Causal multi-head self-attention: qkv = m_qkv * x W_qkv^T, then (options of the MSSP paper's
// model) QK-norm and RoPE on q and k per head, softmax(scale * q k^T) v per head,
// out = m_o * o W_o^T. The logit scale comes from the parameterization table. The GEMMs and the
// attention run in the dtype of the weights' compute copies (bf16 under mixed precision: x and
// dy are cast in, y and dx leave in f32 from fp32 accumulation).
#pragma once
#include "src/ops/backend.h"
#include "src/optim/params.h"

namespace moe::models {

struct AttentionShape {
  int B = 1, T = 1, H = 1;
  double scale = 1;
  bool qk_norm = false;  // RMSNorm without gain on each q and k head (before RoPE)
  double norm_eps = 1e-5;
  bool rope = false;     // rotary positions on q and k (half-split pairs)
  double rope_base = 10000;
};

class Attention {
 public:
  Attention(optim::Param* qkv, optim::Param* out, double qkv_mult, double out_mult, AttentionShape s)
      : qkv_w_(qkv), out_w_(out), qkv_mult_(qkv_mult), out_mult_(out_mult), s_(s) {}
  // x (n, N) -> y (n, N).
  void forward(ops::Backend& be, const Tensor& x, Tensor& y);
  // dy (n, N) -> dx (n, N) (written); weight gradients added.
  void backward(ops::Backend& be, const Tensor& dy, Tensor& dx);
  const Tensor& heads_out() const { return o_; }

 private:
  optim::Param *qkv_w_, *out_w_;  // (3N, N), (N, N)
  double qkv_mult_, out_mult_;
  AttentionShape s_;
  Tensor x_, qkv_, probs_, o_;  // saved; probs_ (B, H, T, T) only without the fused attention
  Tensor qkv_raw_, qk_rstd_;    // with qk_norm: the projection before the norm, (n, 2H) 1/rms
  Tensor lse_;                  // (B, H, T) f32: the fused attention's saved statistics
  bool fused_ = false;          // the backend's fused attention (Backend::prefers_fused_attention)
  Tensor do_, dqkv_, xa_, dya_;  // scratch
};

}  // namespace moe::models
