// Planning a routing step on the host: which assignments survive the capacity limit (decided
// over the global batch, so the same tokens drop whatever the layout), the order rows are sent
// in, and the per-expert counts each rank receives. Only counts cross ranks here.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "src/ops/backend.h"

namespace moe::models {

struct GlobalLoad {
  std::vector<int64_t> routed;  // (M) assignments per expert over the global batch, before drops
  int64_t dropped = 0;          // assignments dropped by the capacity limit, global
  int64_t assignments = 0;      // K * tokens, global
};

// Marks which of this rank's (n, K) assignments are kept. Priority: all first choices before any
// second choice (GShard), then global token order (rank order, then local order). capacity <= 0
// keeps everything. Collective over `world`.
GlobalLoad decide_kept(const int32_t* idx, int64_t n, int K, int64_t M, int64_t capacity,
                       comm::Communicator& world, std::vector<uint8_t>& kept);

// Capacity per expert for a capacity factor over the global batch (0 = dropless).
int64_t expert_capacity(double capacity_factor, int64_t global_tokens, int K, int64_t M);

struct DispatchPlan {
  int64_t n = 0, K = 0;
  std::vector<int32_t> perm;       // (m_send) token row of each row sent, expert-major order
  std::vector<int32_t> slot;       // (n * K) row in the send order, -1 when dropped
  std::vector<int64_t> send_rows;  // per EP rank
  std::vector<int64_t> recv_rows;  // per EP rank
  std::vector<int64_t> recv_counts;  // (EP * M_local): rows from source s for local expert e
  std::vector<ops::Segment> segments;  // over received rows (source-major), group = local expert
  int64_t m_send = 0, m_recv = 0;
};

// Builds the plan; collective over `ep` (exchanges per-expert counts).
DispatchPlan make_dispatch_plan(const int32_t* idx, const uint8_t* kept, int64_t n, int K,
                                int64_t experts_per_rank, comm::Communicator& ep);

}  // namespace moe::models
