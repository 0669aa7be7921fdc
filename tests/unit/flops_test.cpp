// Model FLOPs per token against hand counts (config C, and the GPU configs of the CUDA issue).
#include "src/metrics/flops.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

TEST(Flops, ConfigC) {
  config::Config c;  // V=512 T=128 N=128 H=4 L=4 Ne=128 M=8 K=2, GELU experts
  // per layer: attention 4*128^2 = 65536, router 128*8 = 1024, 2 experts * 2*128*128 = 65536
  const double params = 4 * (65536 + 1024 + 65536) + 128 * 512;
  EXPECT_EQ(metrics::active_matmul_params(c), params);
  EXPECT_EQ(metrics::flops_per_token(c), 6 * params + 12.0 * 4 * 128 * 128);
}

TEST(Flops, SwigluAndNoAttention) {
  config::Config c;
  c.moe.activation = "swiglu";
  c.model.attention = false;
  EXPECT_EQ(metrics::active_matmul_params(c), 4 * (1024 + 2 * 3 * 128.0 * 128) + 128 * 512);
  EXPECT_EQ(metrics::flops_per_token(c), 6 * metrics::active_matmul_params(c));
}

TEST(Flops, DenseMlpBlocks) {
  config::Config c;  // config C with an MoE layer every 2 blocks: blocks 1, 3 MoE, 0, 2 dense
  c.moe.stride = 2;
  // attention 4 * 65536; MoE blocks 2 * (1024 + 65536); dense MLPs 2 * (2 * 128 * 512)
  const double params = 4 * 65536.0 + 2 * (1024 + 65536) + 2 * (2 * 128 * 512.0) + 128 * 512;
  EXPECT_EQ(metrics::active_matmul_params(c), params);
  c.model.mlp_width = 64;
  EXPECT_EQ(metrics::active_matmul_params(c), params - 2 * 2 * 128 * (512 - 64.0));
}

}  // namespace
}  // namespace moe::test
