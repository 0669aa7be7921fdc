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
  config::Config c = learning_config();  // a copy 4 tokens back: predicting it takes attention
  c.train.steps = 600;
  c.train.batch = 16;
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
