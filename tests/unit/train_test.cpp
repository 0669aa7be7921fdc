// Training works: a small MoE transformer trained on the synthetic language gets within 0.3
// nats of the language's entropy (its best achievable loss, computed by the data module) on
// held-out sequences, from a start more than 2 nats above it.
#include "comm/parallel_context.h"
#include "src/data/synthetic.h"
#include "src/train/trainer.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

TEST(Training, ReachesEntropyOfSyntheticLanguage) {
  config::Config c;
  c.model.vocab = 64;
  c.model.seq_len = 32;
  c.model.width = 64;
  c.model.heads = 2;
  c.model.depth = 2;
  c.moe.experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_width = 64;
  c.parameterization.base = {64, 64, 4, 2, 2, {}};
  c.parameterization.regime = "III";
  c.optim.lr = 1e-2;
  // Tuned at this base like the paper's *_init_mult: the preset's 1/sqrt(fan_in) stds (0.125
  // at N = 64) times 0.16, i.e. 0.02. With the untuned stds the held-out loss after 600 steps
  // was 1.90 against 1.43 (entropy 1.30; moe train, 2026-11-28).
  for (const char* g : {"attn_qkv", "attn_out", "router", "expert_up", "expert_down"})
    c.parameterization.multipliers[g].init = 0.16;
  c.train.steps = 600;
  c.train.batch = 16;
  c.data.branching = 4;
  c.data.copy_prob = 0.3;  // a copy 4 tokens back: predicting it takes attention
  c.data.copy_lag = 4;
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  train::Trainer tr(c, ctx, {false, false});
  const double entropy = *tr.source().entropy();
  auto val = data::make_source(c.data, c.model.vocab, c.model.seq_len, "val");
  const double start = tr.evaluate(*val, 8);
  while (tr.steps_done() < c.train.steps) tr.step();
  const double end = tr.evaluate(*val, 16);
  std::printf("entropy %.4f, held-out loss %.4f at start, %.4f after %lld steps\n", entropy, start, end,
              (long long)c.train.steps);
  EXPECT_GT(start, entropy + 2.0);
  EXPECT_LT(end - entropy, 0.3);
  EXPECT_GT(end, entropy - 0.02) << "no model beats the true distribution (beyond noise)";
}

}  // namespace
}  // namespace moe::test
