// The memory estimate (src/train/memory_estimate.h): its parameter counts are exactly what the
// model allocates, for every architecture option; the terms scale as the layout says (ZeRO-1
// shards the dense optimizer state, more ranks mean fewer activations each); and the check
// refuses only above the limit, with a message naming the key, the estimate and the limit; the
// activation terms bound what a step keeps allocated (live tensor bytes), f32 and bf16.
// (tests/reliability/numerics_test.cpp compares the total with a real run's peak RSS.)
#include "src/train/memory_estimate.h"

#include "models/transformer.h"
#include "src/data/source.h"
#include "tests/batch_util.h"
#include "src/optim/parameterization.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

TEST(MemoryEstimate, ParameterCountsMatchTheModel) {
  for (bool attention : {true, false})
    for (const char* act : {"gelu", "swiglu"})
      for (const char* opt : {"adamw", "sgd"}) {
        config::Config c = tiny_config();
        c.model.attention = attention;
        c.moe.activation = act;
        c.optim.name = opt;
        auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
        optim::ParamTable table = optim::make_param_table(c);
        models::Transformer model(c, table, ctx, DType::F32);
        train::MemoryEstimate e = train::estimate_memory(c, 1);
        EXPECT_EQ(e.dense_params, model.params().count(false)) << attention << act;
        EXPECT_EQ(e.expert_params, model.params().count(true)) << attention << act;
        EXPECT_DOUBLE_EQ(e.params, 4.0 * double(e.dense_params + e.expert_params));
        EXPECT_DOUBLE_EQ(e.grads, e.params);
        EXPECT_DOUBLE_EQ(e.optimizer, (std::string(opt) == "adamw" ? 2 : 1) * e.params);
      }
}

// The MSSP paper's options change what the model registers: no position table with RoPE, a
// dense MLP (and no router or experts) in the blocks moe.stride skips.
TEST(MemoryEstimate, ParameterCountsMatchThePaperOptions) {
  for (int64_t stride : {1, 2, 3})
    for (const char* pos : {"learned", "rope"}) {
      config::Config c = tiny_config();
      c.model.depth = 3;
      c.moe.stride = stride;
      c.model.position = pos;
      c.model.qk_norm = true;
      c.model.mlp_width = 20;
      auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
      optim::ParamTable table = optim::make_param_table(c);
      models::Transformer model(c, table, ctx, DType::F32);
      train::MemoryEstimate e = train::estimate_memory(c, 1);
      EXPECT_EQ(e.dense_params, model.params().count(false)) << stride << pos;
      EXPECT_EQ(e.expert_params, model.params().count(true)) << stride << pos;
    }
}

TEST(MemoryEstimate, ScalesWithTheLayout) {
  config::Config c = tiny_config();
  c.train.batch = 16;
  c.parallel.ep = 2;
  const train::MemoryEstimate one = train::estimate_memory(c, 2),
                              more = train::estimate_memory(c, 8);
  EXPECT_DOUBLE_EQ(one.params, more.params);  // parameters do not depend on DP
  EXPECT_NEAR(more.activations, one.activations / 4, 1e-9 * one.activations);  // B/P sequences
  c.parallel.zero1 = true;
  const train::MemoryEstimate z = train::estimate_memory(c, 8);
  EXPECT_LT(z.optimizer, more.optimizer);
  c.moe.capacity_factor = 1.0;  // a capacity bounds the exchange below the dropless headroom
  EXPECT_LT(train::estimate_memory(c, 8).a2a, z.a2a);
}

// Mixed precision keeps a bf16 copy of every weight (2 bytes each) beside the f32 master; the
// CUDA model's fused attention saves (B, H, T) row statistics instead of (B, H, T, T).
TEST(MemoryEstimate, Bf16CopiesAndFusedAttention) {
  config::Config c = tiny_config();
  const train::MemoryEstimate f32 = train::estimate_memory(c, 1);
  c.train.dtype = "bf16";
  const train::MemoryEstimate bf16 = train::estimate_memory(c, 1);
  EXPECT_DOUBLE_EQ(bf16.params, 6.0 * double(f32.dense_params + f32.expert_params));
  EXPECT_DOUBLE_EQ(bf16.grads, f32.grads);
  c.parallel.device = "cuda";
  const train::MemoryEstimate gpu = train::estimate_memory(c, 1);
  const double B = double(c.train.batch), H = double(c.model.heads), T = double(c.model.seq_len);
  // bf16 probabilities (2 bytes) minus f32 row statistics, with the estimate's 25% reuse slack.
  const double saved = double(c.model.depth) * B * H * T * (T * 2 - 4) * 1.25;
  EXPECT_NEAR(bf16.activations - gpu.activations, saved, 1e-9 * saved);
}

// The activation and exchange terms against what one training step really keeps: the live
// tensor bytes it adds to what was held before it (parameters, gradients, bf16 weight copies,
// the batch), in f32 and under mixed precision, where the GEMM and attention operands, expert
// activations and exchanged rows are bf16 and the residual stream, norms, router and logits
// stay f32. The estimate is an upper bound (it adds the buffers' 25% reuse slack and the
// dropless exchange headroom), and not a loose one.
TEST(MemoryEstimate, ActivationsBoundWhatAStepHolds) {
  for (bool paper : {false, true}) {
    double held_of[2] = {0, 0}, bound_of[2] = {0, 0};
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      config::Config c = learning_config();
      c.train.batch = 8;
      if (paper) {  // the MSSP paper's transformer: QK-norm, RoPE, dense MLPs between MoE blocks
        c.model.qk_norm = true;
        c.model.position = "rope";
        c.model.depth = 4;
        c.moe.stride = 2;
        c.moe.activation = "swiglu";
      }
      c.train.dtype = bf16 ? "bf16" : "f32";
      optim::ParamTable table = optim::make_param_table(c);
      auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
      models::Transformer model(c, table, ctx, DType::F32, bf16 ? DType::BF16 : DType::F32);
      model.init_params(5);
      auto src = data::make_source(c.data, c.model.vocab, c.model.seq_len);
      data::LocalBatch lb;
      data::load_batch(*src, 2, c.train.batch, c.model.seq_len, 0, 1, lb);
      const models::Batch b = host_batch(lb);
      model.params().zero_grads();
      const int64_t before = tensor_bytes(Device::CPU).live;
      reset_tensor_peak(Device::CPU);
      model.run(b, true, true);
      // Kept: the buffers the step leaves allocated for the next (every activation is one).
      // The peak adds the ops' temporaries: none in f32; under bf16 the CPU backend's f32
      // copies of bf16 operands (it stores bf16 but computes in f32), which a GPU does not make.
      const double held = double(tensor_bytes(Device::CPU).live - before);
      const double peak = double(tensor_bytes(Device::CPU).peak - before);
      const train::MemoryEstimate e = train::estimate_memory(c, 1);
      const double bound = e.activations + e.a2a;
      std::printf(
          "  %s%s: a step keeps %.0f bytes above the model (peak %.0f); activations + exchange "
          "estimated %.0f (%.2fx what it keeps)\n",
          paper ? "paper " : "", c.train.dtype.c_str(), held, peak, bound, bound / held);
      EXPECT_GE(bound, held) << c.train.dtype;
      EXPECT_LE(bound, 1.5 * held) << c.train.dtype;
      if (!bf16) EXPECT_GE(bound, peak);
      held_of[bf16] = held;
      bound_of[bf16] = bound;
    }
    EXPECT_LT(held_of[1], held_of[0]);
    EXPECT_LT(bound_of[1], bound_of[0]);
  }
}

TEST(MemoryEstimate, CheckRefusesOnlyAboveTheLimit) {
  config::Config c = tiny_config();
  const train::MemoryEstimate e = train::estimate_memory(c, 1);
  EXPECT_NO_THROW(train::check_memory(e, {e.total() * 1.01, "test"}));
  EXPECT_NO_THROW(train::check_memory(e, {0, "unknown"}));  // no limit known: no check
  try {
    train::check_memory(e, {e.total() * 0.5, "the test's limit"});
    FAIL() << "accepted an estimate above the limit";
  } catch (const InputError& err) {
    EXPECT_TRUE(Contains(err.what(), "train.memory_limit_gb"));
    EXPECT_TRUE(Contains(err.what(), e.describe()));
    EXPECT_TRUE(Contains(err.what(), "the test's limit"));
  }
  c.train.memory_limit_gb = 3;
  const train::MemoryLimit l = train::memory_limit(c, 4);
  EXPECT_DOUBLE_EQ(l.bytes, 3.0 * 1024 * 1024 * 1024);
  c.train.memory_limit_gb = 0;  // the machine's MemAvailable, shared by the node's ranks
  const train::MemoryLimit a = train::memory_limit(c, 1), b = train::memory_limit(c, 4);
  EXPECT_GT(a.bytes, 0);
  EXPECT_NEAR(b.bytes, a.bytes / 4, 0.05 * a.bytes);
}

}  // namespace
}  // namespace moe::test
