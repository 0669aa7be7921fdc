// The CPU reference of the fused attention (src/ops/cpu/flash_attention.cpp) is the attention
// the model has always used: in f64, its output and its gradients equal attention_forward /
// attention_backward (probabilities stored) to rounding, its lse is each row's log-sum-exp,
// and bf16 inputs give the f32 result rounded once. Head sizes and a T that is not a multiple
// of the CUDA kernel's 32-row tiles.
#include <cmath>
#include <cstring>

#include "tests/test_util.h"

namespace moe::test {
namespace {

void compare(int B, int T, int H, int D) {
  const int64_t N = int64_t(H) * D, n = int64_t(B) * T;
  const double scale = 1.0 / std::sqrt(double(D));
  Tensor qkv = randn({n, 3 * N}, DType::F64, "flash qkv");
  Tensor dout = randn({n, N}, DType::F64, "flash dout");
  Tensor o1 = Tensor::empty({n, N}, DType::F64), probs = Tensor::empty({B, H, T, T}, DType::F64);
  Tensor o2 = Tensor::empty({n, N}, DType::F64), lse = Tensor::empty({B, H, T}, DType::F64);
  cpu().attention_forward(qkv, o1, probs, B, T, H, scale);
  cpu().flash_attention_forward(qkv, o2, lse, B, T, H, scale);
  for (int64_t i = 0; i < o1.numel(); ++i) ASSERT_NEAR(get(o2, i), get(o1, i), 1e-12) << i;
  // lse_i = log sum_j<=i exp(scale q_i . k_j), directly.
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; i += 7) {
        double sum = 0;
        for (int j = 0; j <= i; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d)
            s += get(qkv, (int64_t(b) * T + i) * 3 * N + h * D + d) *
                 get(qkv, (int64_t(b) * T + j) * 3 * N + N + h * D + d);
          sum += std::exp(scale * s);
        }
        EXPECT_NEAR(get(lse, (int64_t(b) * H + h) * T + i), std::log(sum), 1e-12);
      }
  Tensor d1 = Tensor::empty({n, 3 * N}, DType::F64), d2 = Tensor::empty({n, 3 * N}, DType::F64);
  cpu().attention_backward(qkv, probs, dout, d1, B, T, H, scale);
  cpu().flash_attention_backward(qkv, o2, lse, dout, d2, B, T, H, scale);
  for (int64_t i = 0; i < d1.numel(); ++i) ASSERT_NEAR(get(d2, i), get(d1, i), 1e-11) << i;
}

TEST(FlashAttentionCpu, EqualsTheStoredProbabilityAttention) {
  compare(2, 45, 3, 8);
  compare(1, 33, 2, 16);
}

TEST(FlashAttentionCpu, Bf16IsTheF32ResultRoundedOnce) {
  const int B = 1, T = 20, H = 2, D = 8;
  const int64_t N = H * D, n = B * T;
  Tensor q32 = randn({n, 3 * N}, DType::F32, "flash bf16");
  Tensor q16 = Tensor::empty(q32.shape(), DType::BF16);
  cpu().cast(q32, q16);
  cpu().cast(q16, q32);  // the same (bf16-representable) inputs on both sides
  Tensor o32 = Tensor::empty({n, N}, DType::F32), o16 = Tensor::empty({n, N}, DType::BF16);
  Tensor l32 = Tensor::empty({B, H, T}, DType::F32), l16 = Tensor::empty({B, H, T}, DType::F32);
  cpu().flash_attention_forward(q32, o32, l32, B, T, H, 0.3);
  cpu().flash_attention_forward(q16, o16, l16, B, T, H, 0.3);
  Tensor want = Tensor::empty({n, N}, DType::BF16);
  cpu().cast(o32, want);
  EXPECT_EQ(std::memcmp(want.raw(), o16.raw(), want.nbytes()), 0);
  for (int64_t i = 0; i < l32.numel(); ++i) EXPECT_EQ(l32.data<float>()[i], l16.data<float>()[i]);
}

}  // namespace
}  // namespace moe::test
