// Aux-loss-free balancing (parameterization.md): after a step, b_i -= u * sign(load_i - 1/M)
// with load_i the fraction of the global batch's assignments routed to expert i; the bias
// changes selection only, and only under a preset (or config) that enables it.
#include "comm/parallel_context.h"
#include "models/transformer.h"
#include "src/data/source.h"
#include "tests/batch_util.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

models::Batch first_batch(const config::Config& c) {
  auto src = data::make_source(c.data, c.model.vocab, c.model.seq_len);
  data::LocalBatch lb;
  data::load_batch(*src, 0, c.train.batch, c.model.seq_len, 0, 1, lb);
  return host_batch(lb);
}

TEST(ExpertBias, UpdateFollowsGlobalLoad) {
  config::Config c = tiny_config();
  c.parameterization.preset = "jiang";
  c.moe.bias_update_rate = 0.01;
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  optim::ParamTable t = optim::make_param_table(c);
  ASSERT_TRUE(t.layer.expert_bias);
  models::Transformer model(c, t, ctx, DType::F32);
  model.init_params(3);
  models::Batch b = first_batch(c);
  for (int step = 0; step < 3; ++step) {
    model.run(b, false);
    std::vector<std::vector<float>> before;
    for (models::MoeLayer* m : model.moe_layers()) {
      Tensor h = m->bias().to(Device::CPU);
      before.emplace_back(h.data<float>(), h.data<float>() + h.numel());
    }
    model.update_expert_bias();
    auto layers = model.moe_layers();
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto& load = layers[l]->stats().load;
      ASSERT_EQ(load.assignments, c.train.batch * c.model.seq_len * c.moe.top_k);
      Tensor h = layers[l]->bias().to(Device::CPU);
      for (int64_t i = 0; i < c.moe.experts; ++i) {
        double frac = double(load.routed[i]) / load.assignments, target = 1.0 / c.moe.experts;
        float want = before[l][i] - float(0.01 * ((frac > target) - (frac < target)));
        EXPECT_EQ(h.data<float>()[i], want) << "layer " << l << " expert " << i;
      }
    }
  }
}

TEST(ExpertBias, OffUnderMup) {
  config::Config c = tiny_config();
  c.parameterization.preset = "mup";
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  models::Transformer model(c, optim::make_param_table(c), ctx, DType::F32);
  model.init_params(3);
  model.run(first_batch(c), false);
  model.update_expert_bias();
  for (models::MoeLayer* m : model.moe_layers()) EXPECT_EQ(cpu().sum_squares(m->bias()), 0.0);
}

}  // namespace
}  // namespace moe::test
