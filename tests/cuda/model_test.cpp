// Whole-model agreement: the same small Transformer trained for 10 optimizer steps on the CPU
// reference and on the CUDA backend (f32) gives the same losses within 1e-4 relative, and two
// GPU runs give identical losses (every op is deterministic). Routing decisions are discrete, so
// agreement also shows that the router's top-K, capacity drops and the expert-bias update see
// the same values on both backends.
#include "comm/parallel_context.h"
#include "models/transformer.h"
#include "src/data/source.h"
#include "src/optim/optimizer.h"
#include "tests/batch_util.h"
#include "tests/cuda/cuda_test_util.h"

namespace moe::test {
namespace {

// Trainer::step's sequence (load, zero grads, forward + backward, reduce, apply, bias update)
// on one rank with backend `be`; returns the total loss of each step.
std::vector<double> train_losses(ops::Backend& be, const config::Config& c, int steps) {
  const optim::ParamTable table = optim::make_param_table(c);
  auto ctx = comm::make_parallel_context(world().split(world().rank(), 0), 1, &be);
  models::Transformer model(c, table, ctx, DType::F32);
  model.init_params(uint64_t(c.run.seed));
  optim::Optimizer opt(c.optim, c.train.steps, table, model.params(), ctx, false);
  auto src = data::make_source(c.data, c.model.vocab, c.model.seq_len);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    data::LocalBatch lb;
    data::load_batch(*src, s, c.train.batch, c.model.seq_len, 0, 1, lb);
    const models::Batch host = host_batch(lb);
    models::Batch b{host.inputs.to(be.device()), host.targets.to(be.device())};
    model.params().zero_grads();
    const models::LossParts lp = model.run(b, true);
    optim::StepInfo info = opt.reduce_gradients();
    EXPECT_TRUE(info.finite) << be.name() << " step " << s;
    opt.apply(s + 1, info);
    model.update_expert_bias();
    losses.push_back(lp.total());
  }
  be.synchronize();
  return losses;
}

config::Config model_config() {
  config::Config c = tiny_config();
  c.model.vocab = 64;
  c.model.seq_len = 16;
  c.model.width = 32;
  c.model.heads = 4;
  c.moe.experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_width = 24;
  c.train.batch = 4;
  c.train.steps = 10;
  c.optim.warmup = 2;
  c.optim.lr = 1e-2;
  return c;
}

void check_agreement(const config::Config& c, const std::string& what) {
  const int steps = int(c.train.steps);
  const std::vector<double> ref = train_losses(cpu(), c, steps);
  const std::vector<double> got = train_losses(*cuda_backend(), c, steps);
  const std::vector<double> again = train_losses(*cuda_backend(), c, steps);
  ASSERT_EQ(ref.size(), got.size());
  for (int s = 0; s < steps; ++s) {
    std::printf("  %-28s step %2d  cpu %.8f  cuda %.8f  rel %.2e\n", what.c_str(), s + 1, ref[s],
                got[s], std::abs(got[s] - ref[s]) / std::abs(ref[s]));
    EXPECT_NEAR(got[s], ref[s], 1e-4 * std::abs(ref[s])) << what << " step " << s + 1;
    EXPECT_EQ(got[s], again[s]) << what << " step " << s + 1 << ": GPU runs differ";
  }
  EXPECT_LT(ref.back(), ref.front()) << what << ": the loss did not go down";
}

class CudaModel : public CudaTest {};

TEST_F(CudaModel, MsspGeluAttentionAdamw) {
  config::Config c = model_config();
  c.parameterization.preset = "mssp";
  check_agreement(c, "mssp gelu adamw");
}

TEST_F(CudaModel, MupSwigluCapacityDropping) {
  config::Config c = model_config();
  c.parameterization.preset = "mup";
  c.moe.activation = "swiglu";
  c.moe.capacity_factor = 0.5;  // drops tokens: slots of -1 in combine and scatter
  c.moe.aux_loss = 0.05;
  c.moe.z_loss = 0.01;
  check_agreement(c, "mup swiglu capacity 0.5");
}

TEST_F(CudaModel, SpSigmoidExpertBiasSgdNoAttention) {
  config::Config c = model_config();
  c.parameterization.preset = "sp";
  c.model.attention = false;
  c.moe.gate = "sigmoid";
  c.moe.expert_bias = true;
  c.moe.bias_update_rate = 1e-2;
  c.optim.name = "sgd";
  c.optim.lr = 0.05;
  check_agreement(c, "sp sigmoid bias sgd");
}

// The MSSP paper's transformer: RoPE and QK-norm on q, k before the GPU's fused attention
// (backward through both), and dense GELU MLPs in the blocks between MoE blocks.
TEST_F(CudaModel, PaperOptionsRopeQkNormStride) {
  config::Config c = model_config();
  c.parameterization.preset = "mssp";
  c.model.depth = 4;
  c.parameterization.base.depth = 4;
  c.model.position = "rope";
  c.model.qk_norm = true;
  c.moe.stride = 2;
  c.model.mlp_width = 48;
  check_agreement(c, "mssp rope qk_norm stride 2");
}

}  // namespace
}  // namespace moe::test
