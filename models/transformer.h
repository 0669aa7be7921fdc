// The pre-norm MoE decoder of architecture.md:
//   h0 = m_E W_E[tok] + m_P W_P[pos]
//   h  = h + m_res * Attn(RMSNorm(h))      (skipped when attention = false)
//   h  = h + m_res * MoE(RMSNorm(h))
//   logits = m_out * RMSNorm(h) W_U^T ; loss = mean cross-entropy + aux + z
// Forward and backward by hand on the backend; every multiplier from the parameterization table.
#pragma once
#include <memory>
#include <vector>

#include "comm/parallel_context.h"
#include "models/attention.h"
#include "models/moe/moe_layer.h"
#include "models/probe.h"
#include "src/config/config.h"
#include "src/optim/parameterization.h"
#include "src/optim/params.h"

namespace moe::models {

// The Philox stream of one init unit: 0 for a dense tensor, 1 + global expert index for an
// expert, and expert 0's stream (1) for every expert of a tied group, so that tied experts are
// identical at any expert-parallel size without communication.
uint32_t init_stream(const optim::Param& p, int64_t local_expert, bool tied);

// One rank's slice of the global batch, on the compute device.
struct Batch {
  Tensor inputs;   // (B_local * T) i32
  Tensor targets;  // (B_local * T) i32
};

struct LossParts {
  double ce = 0, aux = 0, z = 0;  // global means (the same on every rank)
  double total() const { return ce + aux + z; }
};

class Transformer {
 public:
  Transformer(const config::Config& cfg, const optim::ParamTable& table, comm::ParallelContext& ctx,
              DType dtype);
  // Philox init keyed by (seed, parameter name, global expert index; expert 0 when tied).
  void init_params(uint64_t seed);
  // Forward and, when `backward`, the gradients (added to the parameters' grads).
  LossParts run(const Batch& batch, bool backward);
  // The aux-loss-free bias update of every MoE layer (after the optimizer step).
  void update_expert_bias();

  optim::ParamStore& params() { return params_; }
  const optim::ParamTable& table() const { return table_; }
  std::vector<MoeLayer*> moe_layers();
  void set_probe(Probe* p) { probe_ = p; }
  int64_t local_batch() const { return B_; }
  int64_t seq_len() const { return T_; }
  DType dtype() const { return dtype_; }

 private:
  struct Sublayer {
    bool attention = false;
    optim::Param* norm = nullptr;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<MoeLayer> moe;
    Tensor xn, rstd;  // saved norm output and 1/rms
    int layer = 0;
  };

  void forward(const Batch& b, LossParts& loss);
  void backward(const Batch& b);

  config::Config cfg_;
  optim::ParamTable table_;
  comm::ParallelContext& ctx_;
  DType dtype_;
  int64_t B_, T_, N_, V_, n_;
  optim::ParamStore params_;
  optim::Param *embed_, *pos_, *final_norm_, *unembed_;
  std::vector<Sublayer> subs_;
  Probe* probe_ = nullptr;
  Tensor pos_ids_;                // (n) i32
  std::vector<Tensor> h_;         // residual stream before each sublayer, and after the last
  Tensor sub_out_, fn_, frstd_, logits_, dfn_, dh_, dsub_, dxn_;
};

}  // namespace moe::models
