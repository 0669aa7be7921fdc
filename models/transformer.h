// The pre-norm MoE decoder of architecture.md:
//   h0 = m_E W_E[tok] + m_P W_P[pos]        (no W_P with model.position = "rope")
//   h  = h + m_res * Attn(RMSNorm(h))      (skipped when attention = false)
//   h  = h + m_res * MoE(RMSNorm(h))       (a dense GELU MLP in the blocks moe.stride skips)
//   logits = m_out * RMSNorm(h) W_U^T ; loss = mean cross-entropy + aux + z
// Forward and backward by hand on the backend; every multiplier from the parameterization table.
#pragma once
#include <memory>
#include <vector>

#include "comm/parallel_context.h"
#include "models/attention.h"
#include "models/dense_mlp.h"
#include "models/moe/moe_layer.h"
#include "models/probe.h"
#include "src/config/config.h"
#include "src/optim/parameterization.h"
#include "src/optim/params.h"

namespace moe::models {

// One rank's slice of the global batch, on the compute device.
struct Batch {
  Tensor inputs;   // (B_local * T) i32
  Tensor targets;  // (B_local * T) i32
};

struct LossParts {
  double ce = 0, aux = 0, z = 0;  // global means (the same on every rank)
  double total() const { return ce + aux + z; }
  LossParts& operator+=(const LossParts& o) {
    ce += o.ce;
    aux += o.aux;
    z += o.z;
    return *this;
  }
};

class Transformer {
 public:
  // `dtype`: master weights, gradients, the residual stream, norms, router and loss (f32, or f64
  // in gradient checks). `compute`: the dtype of the GEMM and attention operands (bf16 under
  // train.dtype = "bf16", else the same as dtype), from bf16 copies of the weights.
  Transformer(const config::Config& cfg, const optim::ParamTable& table, comm::ParallelContext& ctx,
              DType dtype, DType compute);
  Transformer(const config::Config& cfg, const optim::ParamTable& table, comm::ParallelContext& ctx,
              DType dtype)
      : Transformer(cfg, table, ctx, dtype, dtype) {}
  // Philox init keyed by (seed, parameter name, global expert index; expert 0 when tied).
  void init_params(uint64_t seed);
  // Forward and, when `backward`, the gradients (added to the parameters' grads) of one
  // micro-batch (the local batch without train.micro_batch). The cross-entropy is this
  // micro-batch's share of the step's mean, the aux and z terms its mean's share: a step's
  // losses are the sums over its micro-steps. `new_step` = false for a step's later micro-steps
  // (the expert-bias update counts the load of all of them).
  LossParts run(const Batch& batch, bool backward, bool new_step = true);
  // The aux-loss-free bias update of every MoE layer (after the optimizer step).
  void update_expert_bias();

  optim::ParamStore& params() { return params_; }
  const optim::ParamTable& table() const { return table_; }
  const config::Config& config() const { return cfg_; }
  std::vector<MoeLayer*> moe_layers();
  void set_probe(Probe* p) { probe_ = p; }
  int64_t local_batch() const { return B_; }
  int64_t seq_len() const { return T_; }
  DType dtype() const { return dtype_; }
  DType compute_dtype() const { return params_.compute_dtype(); }

 private:
  struct Sublayer {
    bool attention = false;
    optim::Param* norm = nullptr;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<MoeLayer> moe;
    std::unique_ptr<DenseMlp> mlp;
    Tensor xn, rstd;  // saved norm output and 1/rms
    int layer = 0;
  };

  void forward(const Batch& b, LossParts& loss);
  void backward(const Batch& b);
  // The MoE layers' aux and z losses from their routing statistics (one download for all).
  void finish_moe_losses();

  config::Config cfg_;
  optim::ParamTable table_;
  comm::ParallelContext& ctx_;
  DType dtype_;
  int64_t B_, T_, N_, V_, n_;
  optim::ParamStore params_;
  optim::Param *embed_, *pos_ = nullptr, *final_norm_, *unembed_;  // pos_: learned positions only
  std::vector<Sublayer> subs_;
  Probe* probe_ = nullptr;
  Tensor pos_ids_;                // (n) i32
  std::vector<Tensor> h_;         // residual stream before each sublayer, and after the last
  Tensor sub_out_, fn_, frstd_, logits_, dfn_, dh_, dsub_, dxn_;
  Tensor fna_, dlogits_a_;
  Tensor stats_all_;  // (L_moe * (M + 1)) routing statistics of every MoE layer  // the unembedding's operands in the compute dtype (mixed precision)
};

}  // namespace moe::models
