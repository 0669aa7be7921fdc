// Learning-rate schedule: linear warmup, then cosine or linear decay to min_lr_ratio, or constant.
#pragma once
#include <cmath>
#include <string>

namespace moe::optim {

// Factor in (0, 1] multiplying each group's learning rate at `step` (counted from 1).
inline double lr_factor(const std::string& schedule, int64_t step, int64_t warmup, int64_t total,
                        double min_ratio) {
  if (warmup > 0 && step <= warmup) return double(step) / double(warmup);
  if (schedule == "constant" || total <= warmup) return 1.0;
  double p = std::min(1.0, double(step - warmup) / double(total - warmup));
  double decay = schedule == "linear" ? 1.0 - p : 0.5 * (1.0 + std::cos(M_PI * p));
  return min_ratio + (1.0 - min_ratio) * decay;
}

}  // namespace moe::optim
