// The paper's MSSP in regime I starts the router at zero: every logit is 0, every sigmoid gate
// 1/2, and the top-K selection ties. Ties go to the lower expert index (on every backend and
// at any sharding, since the choice is per token), so step 1 sends every token to experts
// 0..K-1; the router's gradient then separates the logits and the load spreads.
#include "comm/parallel_context.h"
#include "src/train/trainer.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

// The multi-rank tests' model (test_util.h) in regime I, where MSSP's router starts at zero.
config::Config zero_router_config() {
  config::Config c = small_moe_config();
  c.parameterization.preset = "mssp";
  c.parameterization.regime = "I";
  c.optim.lr = 1e-2;
  c.optim.warmup = 0;
  c.optim.weight_decay = 0;
  c.train.steps = 60;
  c.train.batch = 8;
  return c;
}

struct LoadSummary {
  int used = 0;              // experts with any token, fewest over layers
  double max_over_mean = 0;  // largest over layers
};

LoadSummary load_of(train::Trainer& tr) {
  LoadSummary s;
  s.used = 1 << 30;
  for (models::MoeLayer* m : tr.model().moe_layers()) {
    const auto& routed = m->stats().load.routed;
    int used = 0;
    double total = 0, mx = 0;
    for (int64_t r : routed) {
      used += r > 0;
      total += double(r);
      mx = std::max(mx, double(r));
    }
    s.used = std::min(s.used, used);
    s.max_over_mean = std::max(s.max_over_mean, mx / (total / double(routed.size())));
  }
  return s;
}

TEST(ZeroRouter, TiesGoToLowerExpertsThenTheLoadSpreads) {
  config::Config c = zero_router_config();
  ASSERT_EQ(optim::make_param_table(c)[optim::Group::Router].init_kind, "zero");
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  train::Trainer tr(c, ctx, {false, false});
  const double first_loss = tr.step().loss.total();
  for (models::MoeLayer* m : tr.model().moe_layers()) {
    const auto& routed = m->stats().load.routed;
    const int64_t tokens = c.train.batch * c.model.seq_len;
    EXPECT_EQ(routed[0], tokens) << "every token's first choice is expert 0";
    EXPECT_EQ(routed[1], tokens);
    for (size_t e = 2; e < routed.size(); ++e) EXPECT_EQ(routed[e], 0) << "expert " << e;
  }
  LoadSummary start = load_of(tr);
  EXPECT_EQ(start.used, c.moe.top_k);
  double last_loss = first_loss;
  while (tr.steps_done() < c.train.steps) last_loss = tr.step().loss.total();
  LoadSummary end = load_of(tr);
  std::printf("zero router: step 1 loss %.3f, %d experts used, max/mean load %.2f; step %lld loss %.3f, %d used, %.2f\n",
              first_loss, start.used, start.max_over_mean, (long long)c.train.steps, last_loss, end.used,
              end.max_over_mean);
  EXPECT_EQ(end.used, c.moe.experts) << "every expert receives tokens after training";
  // The busiest expert's share of one batch (128 tokens) moves by +-0.4 from step to step here
  // (1.5 .. 2.4 between steps 20 and 120); at step 1 it is 4, two experts of eight taking all.
  EXPECT_LT(end.max_over_mean, 0.75 * start.max_over_mean);
  EXPECT_LT(last_loss, first_loss - 0.5) << "training proceeds";
}

}  // namespace
}  // namespace moe::test
