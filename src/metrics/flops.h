// Model FLOPs per token, the convention used for MFU: 6 x active matmul parameters (forward
// and backward) + 12 L T N for attention scores and values (PaLM, Chowdhery et al. 2022,
// appendix B). Active = what one token touches: attention, the router and K experts of each MoE
// block, the dense MLP of the others (moe.stride > 1), the unembedding.
#pragma once
#include <cstdint>

#include "src/config/config.h"

namespace moe::metrics {

inline double active_matmul_params(const config::Config& c) {
  const double N = double(c.model.width), F = double(c.moe.expert_width), M = double(c.moe.experts);
  const double K = double(c.moe.top_k), L = double(c.model.depth), V = double(c.model.vocab);
  const double per_expert = (c.moe.activation == "swiglu" ? 3.0 : 2.0) * N * F;
  const double attn = c.model.attention ? 4.0 * N * N : 0.0;
  const double Lm = double(config::moe_layer_count(c.moe, c.model.depth));
  const double mlp = 2.0 * N * double(config::mlp_width(c.model));
  return L * attn + Lm * (N * M + K * per_expert) + (L - Lm) * mlp + N * V;
}

inline double flops_per_token(const config::Config& c) {
  const double attn = c.model.attention ? 12.0 * double(c.model.depth) * double(c.model.seq_len) * double(c.model.width) : 0.0;
  return 6.0 * active_matmul_params(c) + attn;
}

}  // namespace moe::metrics
