// train.dtype = "bf16" is honoured on the CPU backend: 50 steps of mixed precision (f32 master
// weights, gradients and optimizer state; bf16 weight copies and activations for the GEMMs and
// attention) follow the f32 run within a tolerance argued below, and are not the f32 run.
#include <cmath>

#include "comm/parallel_context.h"
#include "src/train/trainer.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

config::Config mp_config(const std::string& dtype) {
  config::Config c = learning_config();
  c.train.steps = 50;
  c.train.batch = 8;
  c.train.dtype = dtype;
  // The paper's presets start the unembedding at zero, which makes the step-1 loss exactly
  // ln V in any dtype: give it a std so that step 1 shows the forward's roundings.
  c.parameterization.overrides["unembed"].zero_init = false;
  c.parameterization.groups["unembed"].init_std = 0.02;
  return c;
}

std::vector<double> losses(const std::string& dtype, DType* compute) {
  config::Config c = mp_config(dtype);
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  train::Trainer tr(c, ctx, {false, false});
  *compute = tr.model().compute_dtype();
  EXPECT_EQ(tr.model().dtype(), DType::F32) << "master weights stay f32";
  EXPECT_EQ(tr.model().params().grads(false).dtype(), DType::F32) << "gradients stay f32";
  std::vector<double> l;
  while (tr.steps_done() < c.train.steps) l.push_back(tr.step().loss.ce);
  return l;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / double(to - from);
}

// Why these tolerances. bf16 keeps 8 significant bits: each rounding of a weight or an
// activation changes it by at most 2^-8 relative (0.4%). At step 1 both runs start from the
// same f32 weights and differ only by the forward's roundings: GEMM outputs accumulate in
// f32, so each carries the relative error of its rounded inputs (~2^-8 per operand, and the
// errors of a dot product's terms are independent, so they do not grow with its length), and
// after the 2 blocks and the unembedding the logits move by ~1% of their size; with logits of O(1) at init the cross-entropy (~ln 64 = 4.16) moves by
// well under 0.02 nats: we allow 0.02. Over 50 AdamW steps the runs drift apart (Adam
// normalizes updates, so a rounding that flips a gradient's sign moves a weight by a full lr
// step either way, and routing decisions near a tie can flip), so the trajectories are compared
// on 10-step means, which average the step-to-step noise of the loss, and allowed 0.1 nats
// (about 3% of the loss there, 5x what the rounding explains by the step-1 argument scaled by
// the gradient noise). Measured when written: 1.5e-5 nats apart at step 1, 0.005 nats apart
// over steps 41-50 (2.3208 against 2.3256). Both runs must also learn (fall by more than 0.5 nats), and the bf16
// run must differ from the f32 one: identical losses would mean the dtype was ignored.
TEST(MixedPrecision, Bf16Follows50StepsOfF32OnCpu) {
  DType c32, c16;
  const std::vector<double> f = losses("f32", &c32), b = losses("bf16", &c16);
  EXPECT_EQ(c32, DType::F32);
  EXPECT_EQ(c16, DType::BF16) << "train.dtype = \"bf16\" must run bf16 GEMMs";
  ASSERT_EQ(f.size(), 50u);
  ASSERT_EQ(b.size(), 50u);
  std::printf("step 1: f32 %.6f bf16 %.6f; steps 41-50: f32 %.4f bf16 %.4f\n", f[0], b[0],
              mean(f, 40, 50), mean(b, 40, 50));
  EXPECT_NEAR(b[0], f[0], 0.02);
  EXPECT_NE(b[0], f[0]) << "the bf16 run computed exactly the f32 losses: dtype ignored?";
  for (size_t s = 0; s < 50; s += 10)
    EXPECT_NEAR(mean(b, s, s + 10), mean(f, s, s + 10), 0.1) << "steps " << s + 1 << "-" << s + 10;
  EXPECT_LT(mean(f, 40, 50), f[0] - 0.5);
  EXPECT_LT(mean(b, 40, 50), b[0] - 0.5);
  for (double l : b) EXPECT_TRUE(std::isfinite(l));
}

}  // namespace
}  // namespace moe::test
