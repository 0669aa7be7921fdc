// Router top-K edge cases on the CPU backend, capacity decisions and the dispatch plan on 1 rank.
#include <algorithm>
#include <cmath>

#include "models/moe/dispatch_plan.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

struct RouterOut {
  std::vector<double> gates, w, stats;
  std::vector<int32_t> idx;
};

// Runs router_forward in f64 on `n` rows of M logits.
RouterOut Route(const std::vector<double>& logits, int64_t M, const ops::RouterOptions& opt,
                const std::vector<double>& bias = {}) {
  const int64_t n = int64_t(logits.size()) / M, K = opt.top_k;
  Tensor r = Tensor::empty({n, M}, DType::F64), b;
  std::copy(logits.begin(), logits.end(), r.data<double>());
  if (!bias.empty()) {
    b = Tensor::empty({M}, DType::F64);
    std::copy(bias.begin(), bias.end(), b.data<double>());
  }
  Tensor g = Tensor::empty({n, M}, DType::F64), idx = Tensor::empty({n, K}, DType::I32);
  Tensor w = Tensor::empty({n, K}, DType::F64), st = Tensor::empty({M + 1}, DType::F64);
  cpu().router_forward(r, b, opt, g, idx, w, st);
  RouterOut o;
  o.gates.assign(g.data<double>(), g.data<double>() + n * M);
  o.w.assign(w.data<double>(), w.data<double>() + n * K);
  o.stats.assign(st.data<double>(), st.data<double>() + M + 1);
  o.idx.assign(idx.data<int32_t>(), idx.data<int32_t>() + n * K);
  return o;
}

ops::RouterOptions Opts(int K, ops::Gate gate = ops::Gate::Softmax, bool renorm = true,
                        bool bias = false) {
  ops::RouterOptions o;
  o.top_k = K;
  o.gate = gate;
  o.renormalize = renorm;
  o.use_bias = bias;
  return o;
}

std::vector<double> Softmax(const std::vector<double>& r) {
  double mx = *std::max_element(r.begin(), r.end()), z = 0;
  std::vector<double> p(r.size());
  for (size_t i = 0; i < r.size(); ++i) z += p[i] = std::exp(r[i] - mx);
  for (double& x : p) x /= z;
  return p;
}

TEST(Router, ExactTiesPickTheLowerIndex) {
  // Row 0: all equal. Row 1: three-way tie for the top. Row 2: tie for second place.
  RouterOut o = Route({0, 0, 0, 0, 0, 1, 3, 3, 0, 3, 5, 2, 2, 2, 1}, 5, Opts(2));
  EXPECT_EQ(o.idx, (std::vector<int32_t>{0, 1, 1, 2, 0, 1}));
  // Ties in the biased score follow the same rule.
  RouterOut b = Route({1, 1, 1, 1}, 4, Opts(1, ops::Gate::Softmax, true, true), {0, 0.5, 0.5, 0});
  EXPECT_EQ(b.idx, (std::vector<int32_t>{1}));
}

TEST(Router, SelectsTheLargestGatesInOrder) {
  const std::vector<double> r = {0.3, -1.0, 2.0, 0.9, 1.5, -0.2};
  RouterOut o = Route(r, 6, Opts(3));
  EXPECT_EQ(o.idx, (std::vector<int32_t>{2, 4, 3}));
  std::vector<double> p = Softmax(r);
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(o.gates[j], p[j], 1e-14);
  const double sel = p[2] + p[4] + p[3];
  EXPECT_NEAR(o.w[0], p[2] / sel, 1e-14);
  EXPECT_NEAR(o.w[1], p[4] / sel, 1e-14);
  EXPECT_NEAR(o.w[2], p[3] / sel, 1e-14);
}

TEST(Router, AllExpertsWhenKEqualsM) {
  const int64_t M = 5;
  const std::vector<double> r = {0.1, -0.4, 1.2, 0.7, -2.0, 3.0, 0.0, 0.0, -1.0, 2.5};
  for (ops::Gate gate : {ops::Gate::Softmax, ops::Gate::Sigmoid})
    for (bool renorm : {true, false}) {
      RouterOut o = Route(r, M, Opts(M, gate, renorm));
      for (int t = 0; t < 2; ++t) {
        std::vector<int32_t> sel(o.idx.begin() + t * M, o.idx.begin() + (t + 1) * M);
        std::sort(sel.begin(), sel.end());
        EXPECT_EQ(sel, (std::vector<int32_t>{0, 1, 2, 3, 4})) << "every expert once";
        double sum_w = 0, sum_g = 0;
        for (int k = 0; k < M; ++k) sum_w += o.w[t * M + k];
        for (int j = 0; j < M; ++j) sum_g += o.gates[t * M + j];
        for (int k = 0; k < M; ++k) {
          double g = o.gates[t * M + o.idx[t * M + k]];
          EXPECT_NEAR(o.w[t * M + k], renorm ? g / sum_g : g, 1e-14);
        }
        if (renorm) EXPECT_NEAR(sum_w, 1.0, 1e-14);
        if (gate == ops::Gate::Softmax) EXPECT_NEAR(sum_g, 1.0, 1e-14);
      }
    }
}

TEST(Router, SigmoidWithoutRenormalizationGivesTheGates) {
  const std::vector<double> r = {-3.0, 0.5, 2.0, 0.0, 1.0, -0.5};
  RouterOut o = Route(r, 6, Opts(2, ops::Gate::Sigmoid, false));
  EXPECT_EQ(o.idx, (std::vector<int32_t>{2, 4}));
  EXPECT_NEAR(o.w[0], 1 / (1 + std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(o.w[1], 1 / (1 + std::exp(-1.0)), 1e-15);
  // The load-balancing statistic for sigmoid is g normalized over all experts.
  double sum = 0;
  for (double x : r) sum += 1 / (1 + std::exp(-x));
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(o.stats[j], 1 / (1 + std::exp(-r[j])) / sum, 1e-15);
}

TEST(Router, BiasChangesSelectionButNotWeights) {
  const std::vector<double> r = {2.0, 1.0, 0.0, -1.0};
  const std::vector<double> bias = {0, 0, 0, 10};  // pushes the weakest expert into the top 2
  for (ops::Gate gate : {ops::Gate::Softmax, ops::Gate::Sigmoid})
    for (bool renorm : {true, false}) {
      RouterOut plain = Route(r, 4, Opts(2, gate, renorm, false));
      RouterOut biased = Route(r, 4, Opts(2, gate, renorm, true), bias);
      EXPECT_EQ(plain.idx, (std::vector<int32_t>{0, 1}));
      EXPECT_EQ(biased.idx, (std::vector<int32_t>{3, 0}));
      EXPECT_EQ(biased.gates, plain.gates) << "gates never see the bias";
      EXPECT_EQ(biased.stats, plain.stats) << "nor do the balancing statistics";
      const double g3 = plain.gates[3], g0 = plain.gates[0];
      EXPECT_NEAR(biased.w[0], renorm ? g3 / (g3 + g0) : g3, 1e-15);
      EXPECT_NEAR(biased.w[1], renorm ? g0 / (g3 + g0) : g0, 1e-15);
    }
}

TEST(Router, StatsSumProbabilitiesAndSquaredLogsumexp) {
  const std::vector<double> r = {0.5, -0.5, 1.0, 2.0, 0.0, -1.0};
  RouterOut o = Route(r, 3, Opts(1));
  double z = 0;
  for (int t = 0; t < 2; ++t) {
    double lse = std::log(std::exp(r[3 * t]) + std::exp(r[3 * t + 1]) + std::exp(r[3 * t + 2]));
    z += lse * lse;
  }
  std::vector<double> p0 = Softmax({0.5, -0.5, 1.0}), p1 = Softmax({2.0, 0.0, -1.0});
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(o.stats[j], p0[j] + p1[j], 1e-15);
  EXPECT_NEAR(o.stats[3], z, 1e-13);
}

TEST(DispatchPlan, ExpertCapacityRounding) {
  using models::expert_capacity;
  EXPECT_EQ(expert_capacity(0.0, 100, 2, 8), 0);  // dropless
  EXPECT_EQ(expert_capacity(1.0, 16, 2, 8), 4);   // exact
  EXPECT_EQ(expert_capacity(1.25, 8, 2, 4), 5);   // exact after the factor
  EXPECT_EQ(expert_capacity(1.0, 10, 2, 3), 7);   // 6.67 rounds up
  EXPECT_EQ(expert_capacity(1.5, 3, 1, 2), 3);    // 2.25 rounds up
  EXPECT_EQ(expert_capacity(0.01, 4, 1, 8), 1);   // never below one slot
}

// decide_kept on a 1-rank world.
std::vector<uint8_t> Kept(const std::vector<int32_t>& idx, int K, int64_t M, int64_t cap,
                          models::GlobalLoad* load) {
  std::vector<uint8_t> kept;
  *load = models::decide_kept(idx.data(), int64_t(idx.size()) / K, K, M, cap, world(), kept);
  return kept;
}

TEST(DispatchPlan, CapacityKeepsFirstChoicesFirstThenTokenOrder) {
  // Token choices (first, second): t0 (0,1), t1 (1,0), t2 (0,1); capacity 2 per expert.
  // Expert 0: first choices of t0 and t2 fill it, so t1's earlier second choice drops.
  // Expert 1: t1's first choice, then second choices in token order: t0 kept, t2 dropped.
  models::GlobalLoad load;
  std::vector<uint8_t> kept = Kept({0, 1, 1, 0, 0, 1}, 2, 2, 2, &load);
  EXPECT_EQ(kept, (std::vector<uint8_t>{1, 1, 1, 0, 1, 0}));
  EXPECT_EQ(load.dropped, 2);
  EXPECT_EQ(load.routed, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(load.assignments, 6);
  // No capacity limit keeps everything.
  kept = Kept({0, 1, 1, 0, 0, 1}, 2, 2, 0, &load);
  EXPECT_EQ(kept, std::vector<uint8_t>(6, 1));
  EXPECT_EQ(load.dropped, 0);
  EXPECT_EQ(load.assignments, 6);
}

TEST(DispatchPlan, CapacityOnRandomRoutingObeysThePriorityRule) {
  const int K = 3;
  const int64_t n = 40, M = 5, cap = 22;
  rng::Stream st(rng::make_key(5, "routing"), 0);
  std::vector<int32_t> idx(n * K);
  for (int64_t t = 0; t < n; ++t) {  // K distinct experts per token, skewed toward expert 0
    std::vector<int32_t> e = {0, 1, 2, 3, 4};
    for (int k = 0; k < K; ++k) {
      int64_t j = k + int64_t(st.next_below(M - k));
      if (k == 0 && st.next_double() < 0.5) j = std::find(e.begin(), e.end(), 0) - e.begin();
      std::swap(e[k], e[j]);
      idx[t * K + k] = e[k];
    }
  }
  models::GlobalLoad load;
  std::vector<uint8_t> kept = Kept(idx, K, M, cap, &load);
  int64_t dropped = 0;
  for (int64_t e = 0; e < M; ++e) {
    // Priority order of expert e's assignments: by choice level, then by token.
    std::vector<uint8_t> order;
    for (int k = 0; k < K; ++k)
      for (int64_t t = 0; t < n; ++t)
        if (idx[t * K + k] == e) order.push_back(kept[t * K + k]);
    const int64_t routed = int64_t(order.size()),
                  n_kept = std::count(order.begin(), order.end(), 1);
    EXPECT_EQ(load.routed[e], routed);
    EXPECT_EQ(n_kept, std::min(routed, cap)) << "expert " << e;
    // Kept assignments form a prefix of the priority order.
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end(), std::greater<uint8_t>())) << e;
    dropped += routed - n_kept;
  }
  EXPECT_GT(dropped, 0) << "the case must overflow to test anything";
  EXPECT_EQ(load.dropped, dropped);
  EXPECT_EQ(load.assignments, n * K);
}

TEST(DispatchPlan, PermAndSlotAreConsistent) {
  const int K = 2;
  const int64_t n = 7, M = 4;
  // Expert 2 gets nothing; a few assignments are dropped by hand.
  const std::vector<int32_t> idx = {1, 0, 3, 1, 0, 1, 1, 3, 0, 3, 3, 0, 1, 0};
  const std::vector<uint8_t> kept = {1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0};
  models::DispatchPlan p = models::make_dispatch_plan(idx.data(), kept.data(), n, K, M, world());
  const int64_t m = std::count(kept.begin(), kept.end(), 1);
  ASSERT_EQ(p.m_send, m);
  ASSERT_EQ(int64_t(p.perm.size()), m);
  ASSERT_EQ(int64_t(p.slot.size()), n * K);
  EXPECT_EQ(p.m_recv, m);
  EXPECT_EQ(p.send_rows, (std::vector<int64_t>{m}));
  EXPECT_EQ(p.recv_rows, (std::vector<int64_t>{m}));
  // Each kept assignment owns one row; the row holds its token; dropped ones have slot -1.
  std::vector<int32_t> row_expert(m, -1);
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < K; ++k) {
      int32_t s = p.slot[t * K + k];
      if (!kept[t * K + k]) {
        EXPECT_EQ(s, -1);
        continue;
      }
      ASSERT_GE(s, 0);
      ASSERT_LT(s, m);
      EXPECT_EQ(row_expert[s], -1) << "row " << s << " used twice";
      row_expert[s] = idx[t * K + k];
      EXPECT_EQ(p.perm[s], t);
    }
  // Rows grouped by expert in increasing expert order, tokens increasing inside an expert.
  for (int64_t r = 1; r < m; ++r) {
    EXPECT_LE(row_expert[r - 1], row_expert[r]) << r;
    if (row_expert[r - 1] == row_expert[r]) EXPECT_LT(p.perm[r - 1], p.perm[r]) << r;
  }
  // Segments tile [0, m) without gaps, one per non-empty expert, each naming its rows' expert.
  std::vector<int64_t> count(M, 0);
  for (int32_t e : row_expert) ++count[e];
  EXPECT_EQ(p.recv_counts, count);
  int64_t next = 0;
  std::vector<int> seen;
  for (const ops::Segment& s : p.segments) {
    EXPECT_EQ(s.begin, next);
    EXPECT_GT(s.end, s.begin);
    for (int64_t r = s.begin; r < s.end; ++r) EXPECT_EQ(row_expert[r], s.group);
    seen.push_back(s.group);
    next = s.end;
  }
  EXPECT_EQ(next, m);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 3}));
}

}  // namespace
}  // namespace moe::test
