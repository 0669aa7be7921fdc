// Gradient accumulation (train.micro_batch) and validation (train.eval_every): a step taken in
// micro-batches has the gradients of the step taken at once, up to the order of the sums (f64);
// the trainer's losses follow the unaccumulated run; the memory estimate counts one micro-batch;
// val_loss lands in metrics.jsonl at the evaluation steps.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "comm/parallel_context.h"
#include "models/transformer.h"
#include "src/data/source.h"
#include "src/train/memory_estimate.h"
#include "src/train/run_metrics.h"
#include "src/train/trainer.h"
#include "tests/batch_util.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

// The loss and every gradient of one step of `c` in f64, taken in micro-batches of `micro`
// sequences (0 = at once).
struct StepGrads {
  models::LossParts loss;
  std::vector<std::vector<double>> grads;
  std::vector<std::vector<int64_t>> load;  // per MoE layer: the step's assignments per expert
};

StepGrads step_grads(config::Config c, int64_t micro) {
  c.train.micro_batch = micro;
  optim::ParamTable table = optim::make_param_table(c);
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  models::Transformer model(c, table, ctx, DType::F64);
  model.init_params(5);
  auto src = data::make_source(c.data, c.model.vocab, c.model.seq_len);
  model.params().zero_grads();
  StepGrads out;
  const int64_t n = micro > 0 ? c.train.batch / micro : 1;
  for (int64_t m = 0; m < n; ++m) {
    data::LocalBatch lb;
    data::load_batch(*src, 2, c.train.batch, c.model.seq_len, 0, 1, lb, micro, m);
    out.loss += model.run(host_batch(lb), true, m == 0);
  }
  for (optim::Param& p : model.params().params()) {
    const double* g = p.grad.data<double>();
    out.grads.emplace_back(g, g + p.grad.numel());
  }
  for (models::MoeLayer* l : model.moe_layers()) out.load.push_back(l->stats().step_load.routed);
  return out;
}

config::Config accumulation_config() {
  config::Config c = tiny_config();
  c.train.batch = 8;
  c.moe.z_loss = 0.01;
  c.moe.capacity_factor = 0;  // dropless: routing is per token, whatever the micro-batch
  c.parameterization.overrides["unembed"].zero_init = false;  // every gradient non-zero
  c.parameterization.groups["unembed"].init_std = 0.5;
  return c;
}

TEST(Accumulation, MicroStepsSumToTheFullBatchGradientF64) {
  config::Config c = accumulation_config();
  // The Switch aux loss is a product of batch statistics: per micro-batch it is another
  // objective (as in the paper's code, which accumulates it per micro-batch). Off here; the
  // cross-entropy and z-loss are means over tokens and must agree.
  c.moe.aux_loss = 0;
  const StepGrads full = step_grads(c, 0);
  for (int64_t micro : {1, 2, 4}) {
    const StepGrads acc = step_grads(c, micro);
    EXPECT_NEAR(acc.loss.ce, full.loss.ce, 1e-12 * full.loss.ce) << micro;
    EXPECT_NEAR(acc.loss.z, full.loss.z, 1e-12 * full.loss.z) << micro;
    EXPECT_GT(full.loss.z, 0);
    ASSERT_EQ(acc.grads.size(), full.grads.size());
    for (size_t p = 0; p < full.grads.size(); ++p) {
      double scale = 0, err = 0;
      for (size_t i = 0; i < full.grads[p].size(); ++i) {
        scale = std::max(scale, std::fabs(full.grads[p][i]));
        err = std::max(err, std::fabs(acc.grads[p][i] - full.grads[p][i]));
      }
      EXPECT_GT(scale, 0) << "parameter " << p;
      EXPECT_LE(err, 1e-12 * scale) << "parameter " << p << ", micro-batch " << micro;
    }
    EXPECT_EQ(acc.load, full.load) << "the expert-bias update sees the whole step's load";
  }
}

TEST(Accumulation, AuxLossIsTheMeanOverMicroSteps) {
  config::Config c = accumulation_config();
  c.moe.aux_loss = 0.05;
  double mean = 0;
  for (int64_t m = 0; m < 2; ++m) {  // each half of the batch as a step of its own
    config::Config h = c;
    h.train.batch = 4;
    optim::ParamTable table = optim::make_param_table(h);
    auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
    models::Transformer model(h, table, ctx, DType::F64);
    model.init_params(5);
    auto src = data::make_source(h.data, h.model.vocab, h.model.seq_len);
    data::LocalBatch lb;
    data::load_batch(*src, 2, c.train.batch, c.model.seq_len, 0, 1, lb, 4, m);
    mean += model.run(host_batch(lb), false).aux / 2;
  }
  const StepGrads acc = step_grads(c, 4);
  EXPECT_GT(acc.loss.aux, 0);
  EXPECT_NEAR(acc.loss.aux, mean, 1e-12 * mean);
}

TEST(Accumulation, TrainerFollowsTheUnaccumulatedRun) {
  config::Config c = learning_config();
  c.train.steps = 6;
  c.train.batch = 8;
  c.moe.aux_loss = 0;
  c.moe.capacity_factor = 0;
  auto run = [&](int64_t micro) {
    config::Config m = c;
    m.train.micro_batch = micro;
    auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
    train::Trainer tr(m, ctx, {false, false, false});
    std::vector<double> losses;
    while (tr.steps_done() < m.train.steps) losses.push_back(tr.step().loss.ce);
    losses.push_back(tr.evaluate(*tr.validation(), 2));
    return losses;
  };
  const std::vector<double> full = run(0), acc = run(2);
  ASSERT_EQ(full.size(), acc.size());
  // f32 sums in another order: the losses agree to f32 rounding, amplified a little by 6 steps.
  for (size_t i = 0; i < full.size(); ++i) EXPECT_NEAR(acc[i], full[i], 2e-5 * full[i]) << "step " << i + 1;
}

TEST(Accumulation, MemoryEstimateCountsOneMicroBatch) {
  config::Config c = learning_config();
  c.train.batch = 64;
  const double whole = train::estimate_memory(c, 1).activations;
  c.train.micro_batch = 8;
  const double micro = train::estimate_memory(c, 1).activations;
  EXPECT_NEAR(micro, whole / 8, 1e-9 * whole);
}

TEST(Validation, ValLossIsLoggedAtEvaluationStepsOnly) {
  config::Config c = learning_config();
  c.train.steps = 7;
  c.train.batch = 4;
  c.train.log_every = 100;
  c.train.eval_every = 3;
  c.train.eval_batches = 2;
  c.run.dir = std::filesystem::temp_directory_path().string() + "/moe_val_" + std::to_string(::getpid());
  std::filesystem::remove_all(c.run.dir);
  {
    auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
    train::Trainer tr(c, ctx, {true, false, false});
    tr.train();
    // The logged value is evaluate() over the first eval_batches held-out batches.
    const double again = tr.evaluate(*tr.validation(), 2);
    const auto recs = train::read_metrics(c.run.dir + "/metrics.jsonl");
    std::vector<int64_t> with_val;
    for (const auto& r : recs)
      if (r.values.count("val_loss")) with_val.push_back(r.step);
    EXPECT_EQ(with_val, (std::vector<int64_t>{3, 6, 7}));
    ASSERT_FALSE(recs.empty());
    EXPECT_NEAR(recs.back().get("val_loss"), again, 1e-6 * again);
  }
  std::filesystem::remove_all(c.run.dir);
}

}  // namespace
}  // namespace moe::test
