// Capacity decisions and the dispatch order.
#include "models/moe/dispatch_plan.h"

#include <cmath>

#include "src/core/error.h"

namespace moe::models {

int64_t expert_capacity(double capacity_factor, int64_t global_tokens, int K, int64_t M) {
  if (capacity_factor <= 0) return 0;
  // A relative nudge below the exact value so that products like 1.1 * 100 = 110.00000000000001
  // round to 110, not 111.
  const double exact = capacity_factor * K * global_tokens / double(M);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(exact * (1 - 1e-12))));
}

GlobalLoad decide_kept(const int32_t* idx, int64_t n, int K, int64_t M, int64_t capacity,
                       comm::Communicator& world, std::vector<uint8_t>& kept) {
  GlobalLoad load;
  kept.assign(n * K, 1);
  // local[k * M + e]: this rank's assignments of choice k to expert e
  std::vector<int64_t> local(K * M, 0);
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < K; ++k) {
      int32_t e = idx[t * K + k];
      MOE_CHECK(e >= 0 && e < M, "expert id ", e, " outside ", M);
      ++local[k * M + e];
    }
  load.routed.assign(M, 0);
  if (capacity <= 0) {
    for (int k = 0; k < K; ++k)
      for (int64_t e = 0; e < M; ++e) load.routed[e] += local[k * M + e];
    world.all_reduce(load.routed.data(), M, DType::I64, comm::ReduceOp::Sum);
  } else {
    const int P = world.size(), r = world.rank();
    std::vector<int64_t> all(P * K * M);
    world.all_gather(local.data(), all.data(), K * M, DType::I64);
    // start[k * M + e]: global priority position of this rank's first choice-k assignment to e
    std::vector<int64_t> start(K * M, 0), total_k(K * M, 0);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < K * M; ++i) {
        total_k[i] += all[q * K * M + i];
        if (q < r) start[i] += all[q * K * M + i];
      }
    for (int64_t e = 0; e < M; ++e) {
      int64_t before = 0;  // assignments to e at earlier choice levels, all ranks
      for (int k = 0; k < K; ++k) {
        start[k * M + e] += before;
        before += total_k[k * M + e];
      }
      load.routed[e] = before;
    }
    std::vector<int64_t> next = start;
    for (int k = 0; k < K; ++k)
      for (int64_t t = 0; t < n; ++t) {
        int32_t e = idx[t * K + k];
        if (next[k * M + e]++ >= capacity) kept[t * K + k] = 0;
      }
    for (int64_t e = 0; e < M; ++e) load.dropped += std::max<int64_t>(0, load.routed[e] - capacity);
  }
  for (int64_t e = 0; e < M; ++e) load.assignments += load.routed[e];
  return load;
}

DispatchPlan make_dispatch_plan(const int32_t* idx, const uint8_t* kept, int64_t n, int K,
                                int64_t experts_per_rank, comm::Communicator& ep) {
  const int E = ep.size();
  const int64_t Ml = experts_per_rank, M = Ml * E;
  DispatchPlan p;
  p.n = n;
  p.K = K;
  // Counting sort of kept assignments by expert, stable in token order.
  std::vector<int64_t> count(M, 0);
  for (int64_t a = 0; a < n * K; ++a)
    if (kept[a]) ++count[idx[a]];
  std::vector<int64_t> start(M, 0);
  for (int64_t e = 1; e < M; ++e) start[e] = start[e - 1] + count[e - 1];
  p.m_send = M ? start[M - 1] + count[M - 1] : 0;
  p.perm.assign(p.m_send, 0);
  p.slot.assign(n * K, -1);
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < K; ++k) {
      int64_t a = t * K + k;
      if (!kept[a]) continue;
      int64_t pos = start[idx[a]]++;
      p.perm[pos] = static_cast<int32_t>(t);
      p.slot[a] = static_cast<int32_t>(pos);
    }
  p.send_rows.assign(E, 0);
  for (int64_t e = 0; e < M; ++e) p.send_rows[e / Ml] += count[e];
  // Per-expert counts to the owners: block j of `count` is rank j's experts.
  p.recv_counts.assign(E * Ml, 0);
  ep.all_to_all(count.data(), p.recv_counts.data(), Ml, DType::I64);
  p.recv_rows.assign(E, 0);
  int64_t row = 0;
  for (int s = 0; s < E; ++s)
    for (int64_t e = 0; e < Ml; ++e) {
      int64_t c = p.recv_counts[s * Ml + e];
      p.recv_rows[s] += c;
      if (c) p.segments.push_back({row, row + c, static_cast<int>(e)});
      row += c;
    }
  p.m_recv = row;
  return p;
}

}  // namespace moe::models
