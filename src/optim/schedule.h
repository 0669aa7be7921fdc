// Learning-rate schedule: linear warmup, then cosine or linear decay to min_lr_ratio, or constant.
// Warmup and cosine are the MSSP paper's get_lr (transformer-moe-experiments/train.py), step for
// step, with its max_steps = optim.decay_steps, or train.steps when that is 0: it counts steps t
// from 0, warms up as (t + 1) / (W + 1) for t < W, then decays from t = W (factor 1) to
// t = max_steps (min_lr_ratio) and stays there.
#pragma once
#include <cmath>
#include <string>

namespace moe::optim {

// The step where the decay ends: optim.decay_steps, or train.steps when it is 0.
inline int64_t decay_end(int64_t decay_steps, int64_t train_steps) { return decay_steps > 0 ? decay_steps : train_steps; }

// Factor in (0, 1] multiplying each group's learning rate at `step` (counted from 1, so the
// official code's t is step - 1).
inline double lr_factor(const std::string& schedule, int64_t step, int64_t warmup, int64_t total,
                        double min_ratio) {
  const int64_t t = step - 1;
  if (t < warmup) return double(t + 1) / double(warmup + 1);
  if (schedule == "constant") return 1.0;
  // t >= total also covers total <= warmup, where the official code goes straight to min_lr.
  const double p = t >= total ? 1.0 : double(t - warmup) / double(total - warmup);
  const double decay = schedule == "linear" ? 1.0 - p : 0.5 * (1.0 + std::cos(M_PI * p));
  return min_ratio + (1.0 - min_ratio) * decay;
}

}  // namespace moe::optim
