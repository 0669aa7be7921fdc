// Memory per rank, estimated from the config alone before anything is allocated, and the
// limit it is checked against, so that a config too large for the machine stops every rank with
// one message (exit code 2) instead of an out-of-memory kill halfway through the first step.
// The terms follow what the trainer really holds (models/, src/optim/optimizer.cpp): f32
// parameters and gradients, optimizer slots (the dense part sharded under ZeRO-1), activations
// saved for backward on this rank's B/P sequences, and the MoE exchange buffers at the expected
// load (capacity factor, or a dropless headroom for imbalance).
#pragma once
#include <cstdint>
#include <string>

#include "src/config/config.h"

namespace moe::train {

// Dropless routing has no capacity: buffers are sized for this many times the balanced load.
// A worse surge still runs (the buffers grow), it is only not covered by the estimate.
constexpr double kDroplessHeadroom = 2.0;

struct MemoryEstimate {
  int64_t dense_params = 0, expert_params = 0;  // elements held by this rank
  double params = 0, grads = 0, optimizer = 0, activations = 0, a2a = 0, runtime = 0;  // bytes
  double total() const { return params + grads + optimizer + activations + a2a + runtime; }
  // "12.30 GiB (parameters 1.20 GiB, gradients 1.20 GiB, ...)"
  std::string describe() const;
};

// "1.23 GiB" or "45.6 MiB".
std::string format_bytes(double bytes);

MemoryEstimate estimate_memory(const config::Config& cfg, int world_size);

struct MemoryLimit {
  double bytes = 0;    // <= 0: unknown (no check)
  std::string source;  // how it was found, for the message
};

// train.memory_limit_gb when set; else the device's free memory (parallel.device = "cuda", this
// thread's current device) or MemAvailable / ranks_on_node (CPU).
MemoryLimit memory_limit(const config::Config& cfg, int ranks_on_node);

// Throws InputError (naming train.memory_limit_gb) when the estimate exceeds the limit.
void check_memory(const MemoryEstimate& est, const MemoryLimit& limit);

}  // namespace moe::train
