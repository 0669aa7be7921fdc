// The process layout: world = EP x DP_expert. World rank r has ep_rank = r % EP and
// dp_rank = r / EP; an EP group (same dp_rank) exchanges tokens and together holds all M
// experts; a DP-expert group (same ep_rank) holds copies of the same experts. The context also
// carries the compute backend: nothing in the trainer is global.
#pragma once
#include <memory>

#include "comm/communicator.h"
#include "src/ops/backend.h"

namespace moe::comm {

struct ParallelContext {
  std::unique_ptr<Communicator> world;
  std::unique_ptr<Communicator> ep;         // ranks that exchange tokens
  std::unique_ptr<Communicator> dp_expert;  // ranks that hold the same experts
  int ep_size = 1, dp_size = 1, ep_rank = 0, dp_rank = 0;
  ops::Backend* backend = nullptr;
  Device device() const { return backend->device(); }
};

// Splits `world` into the EP x DP layout (world->size() must be divisible by ep).
ParallelContext make_parallel_context(std::unique_ptr<Communicator> world, int ep,
                                      ops::Backend* backend);

}  // namespace moe::comm
