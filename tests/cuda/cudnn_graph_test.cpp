// cuDNN's attention graphs where there is no GPU: when cuDNN can be loaded (it needs no device),
// the forward and backward graphs the backend builds (q, k, v as strided views of qkv, Stats as
// our lse, the causal band, the deterministic backward) pass cudnn-frontend's validation
// against the loaded cuDNN's support surface for Ampere and Hopper (Blackwell, sm100, passed too
// with cuDNN 9.19 and 9.28; older cuDNN 9 releases may refuse it). Whether cuDNN
// then has an engine for them, and what they compute, is cudnn_attention_test.cpp's, on a GPU.
// Skips when the build has no cuDNN path or cuDNN cannot be loaded.
#include "tests/cuda/cuda_test_util.h"
#ifdef MOE_HAVE_CUDNN
#include "src/ops/cuda/cudnn/cudnn_attention.h"
#include "src/ops/cuda/cudnn/cudnn_library.h"
#endif

namespace moe::test {
namespace {

TEST(CudnnGraphs, ValidateWithoutDevice) {
#ifndef MOE_HAVE_CUDNN
  GTEST_SKIP() << "this build has no cuDNN path";
#else
  using ops::gpu::CudnnAttention;
  std::string why;
  if (!ops::gpu::load_cudnn(&why)) GTEST_SKIP() << "cuDNN cannot be loaded: " << why;
  struct Case {
    int B, T, H, D;
  };
  // The shapes of cudnn_attention_test.cpp and of configs A and B.
  const Case cases[] = {{2, 64, 2, 32},  {2, 64, 4, 64},    {2, 128, 2, 64},  {2, 128, 4, 32},
                        {2, 70, 3, 16},  {1, 100, 2, 128},  {2, 33, 2, 8},    {16, 1024, 16, 64},
                        {8, 1024, 16, 128}};
  for (int sm : {80, 90})
    for (const Case& c : cases)
      for (bool backward : {false, true})
        EXPECT_EQ(CudnnAttention::validate_graph(c.B, c.T, c.H, c.D, 1.f / std::sqrt(float(c.D)),
                                                 backward, sm),
                  "")
            << "sm" << sm << (backward ? " backward" : " forward") << " B=" << c.B << " T=" << c.T
            << " H=" << c.H << " D=" << c.D;
  // The check can fail: a head of 20 is no multiple of 8 (sdpa_declined keeps it from cuDNN).
  EXPECT_NE(CudnnAttention::validate_graph(2, 64, 2, 20, 0.2f, false, 90), "");
  EXPECT_NE(CudnnAttention::validate_graph(2, 64, 2, 20, 0.2f, true, 90), "");
#endif
}

}  // namespace
}  // namespace moe::test
