// Builds the EP and DP-expert sub-communicators from the world.
#include "comm/parallel_context.h"

#include "src/core/error.h"

namespace moe::comm {

ParallelContext make_parallel_context(std::unique_ptr<Communicator> world, int ep,
                                      ops::Backend* backend) {
  MOE_CHECK(ep >= 1 && world->size() % ep == 0, "world size ", world->size(),
            " is not divisible by ep = ", ep);
  ParallelContext ctx;
  ctx.ep_size = ep;
  ctx.dp_size = world->size() / ep;
  ctx.ep_rank = world->rank() % ep;
  ctx.dp_rank = world->rank() / ep;
  ctx.ep = world->split(ctx.dp_rank, ctx.ep_rank);
  ctx.dp_expert = world->split(ctx.ep_rank, ctx.dp_rank);
  ctx.world = std::move(world);
  ctx.backend = backend;
  return ctx;
}

}  // namespace moe::comm
