// One MoE layer: route -> dispatch -> experts -> combine, in that order, each its own unit.
// Load statistics, capacity decisions and auxiliary losses use counts over the global batch,
// so they do not depend on the parallel layout.
#pragma once
#include <memory>
#include <vector>

#include "comm/parallel_context.h"
#include "models/moe/dispatcher.h"
#include "models/moe/experts.h"
#include "models/moe/router.h"
#include "models/probe.h"

namespace moe::models {

struct MoeOptions {
  int64_t experts = 8;  // M (global)
  int top_k = 2;
  double c_agg = 1;
  double capacity_factor = 0;
  double aux_loss = 0;
  double z_loss = 0;
  double bias_update_rate = 0;
  int64_t global_tokens = 0;  // tokens in the global (micro-)batch of one forward
  double loss_scale = 1;      // weight of this forward's aux and z terms: 1 / micro-steps
  int64_t force_expert = -1;  // debug.route_all_to_expert: choice k goes to (e + k) mod M
};

struct MoeStats {
  double aux_loss = 0, z_loss = 0;  // global values of this layer's terms
  GlobalLoad load;       // of the last forward
  GlobalLoad step_load;  // summed over the forwards since begin_step (a step's micro-steps)
  int64_t recv_rows = 0;   // rows this rank's experts processed
  double a2a_seconds = 0;
};

class MoeLayer {
 public:
  MoeLayer(comm::ParallelContext& ctx, const MoeOptions& opt, std::unique_ptr<Router> router,
           ExpertParams experts, Tensor bias);
  // x (n, N) -> out (n, N).
  void forward(const Tensor& x, Tensor& out, Probe* probe, int layer);
  // Sets stats().aux_loss and z_loss from this layer's routing statistics summed over every
  // rank, st (M + 1) (the Transformer gathers all layers' in one download after the forward).
  void finish_losses(const double* st);
  // d aux / d (sum_t p_ti) for expert i from the global counts (see moe_layer.cpp).
  double aux_coefficient(int64_t i) const;
  // d z / d (sum_t lse_t^2).
  double z_coefficient() const;
  // The routing statistics of the last forward, on the device: sum_t p_t (M), sum_t lse_t^2.
  const Tensor& routing_stats() const { return routing_.stats; }
  // dout (n, N) -> dx (n, N), added.
  void backward(const Tensor& dout, Tensor& dx);
  // Starts a step: step_load counts from zero.
  void begin_step();
  // Aux-loss-free balancing from the step's load: b_i -= u * sign(load_i - 1/M), identical on
  // every rank.
  void update_bias();
  const MoeStats& stats() const { return stats_; }
  Tensor& bias() { return bias_; }
  const Routing& routing() const { return routing_; }

 private:
  comm::ParallelContext& ctx_;
  MoeOptions opt_;
  std::unique_ptr<Router> router_;
  Dispatcher dispatcher_;
  Experts experts_;
  Tensor bias_;  // (M) expert bias, on the compute device
  Routing routing_;
  Tensor x_, xa_, x_recv_, y_recv_, dy_recv_, dx_recv_, dw_, aux_coef_, bias_delta_;
  std::vector<int32_t> idx_host_;
  std::vector<double> coef_host_;
  std::vector<uint8_t> kept_;
  MoeStats stats_;
  Probe* probe_ = nullptr;  // the last forward's, for the router-logit gradient in backward
  int layer_ = -1;
};

}  // namespace moe::models
