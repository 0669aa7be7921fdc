// The distributed optimizer: reduces gradients (dense over the world, experts over the ranks
// holding the same experts), clips by the global norm, and applies AdamW or SGD with each
// group's rule from the parameterization table. With ZeRO-1 the dense state is sharded over the
// world: reduce-scatter gradients, update the shard (each piece with its own group's rule),
// all-gather the parameters.
#pragma once
#include <array>
#include <vector>

#include "comm/parallel_context.h"
#include "src/config/config.h"
#include "src/optim/parameterization.h"
#include "src/optim/params.h"

namespace moe::optim {

struct StepInfo {
  double grad_norm = 0;      // before clipping
  bool finite = true;        // grad norm finite, on every rank alike
  bool loss_finite = true;   // every rank's loss was finite (the same answer on every rank)
  std::array<double, kNumGroups> lr{};  // per group, this step
};

// Optimizer state of one flat buffer: m/v (Adam) or momentum (SGD).
struct SlotState {
  Tensor m, v;
};

class Optimizer {
 public:
  Optimizer(const config::OptimConfig& cfg, int64_t total_steps, const ParamTable& table,
            ParamStore& params, comm::ParallelContext& ctx, bool zero1);
  // Reduces gradients and computes the global grad norm (same on every rank). local_loss_finite
  // rides on the same reduction, so that a non-finite value seen by one rank only still gives
  // every rank the same verdict (loss_finite) at no extra latency.
  StepInfo reduce_gradients(bool local_loss_finite = true);
  // Clips and updates; `step` counts from 1. Call after reduce_gradients().
  void apply(int64_t step, StepInfo& info);

  // Range of the dense flat buffer this rank updates (all of it without ZeRO-1).
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_end() const { return shard_end_; }
  SlotState& state(bool expert) { return state_[expert]; }
  int64_t steps_taken() const { return steps_taken_; }
  void set_steps_taken(int64_t s) { steps_taken_ = s; }
  bool zero1() const { return zero1_; }

 private:
  // Applies the update to elements [begin, end) of one flat buffer, piece by piece per param.
  void update_range(bool expert, int64_t begin, int64_t end, const Tensor& grads, int64_t step,
                    const StepInfo& info);

  config::OptimConfig cfg_;
  int64_t total_steps_;
  const ParamTable& table_;
  ParamStore& params_;
  comm::ParallelContext& ctx_;
  bool zero1_;
  int64_t shard_begin_ = 0, shard_end_ = 0, shard_size_ = 0;
  std::array<SlotState, 2> state_;  // [dense (shard), expert]
  Tensor grad_shard_, padded_;      // ZeRO-1 buffers
  int64_t steps_taken_ = 0;
};

}  // namespace moe::optim
