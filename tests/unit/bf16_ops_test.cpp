// bf16 on the CPU backend: the host conversion rounds like CUDA's (nearest, ties to even), cast
// round-trips, an op on bf16 tensors equals the f32 op on the widened inputs with its outputs
// rounded once, the GEMMs write f32 results from bf16 operands, and the parameter init goes
// through Backend::init_normal with the streams of models/init.h.
#include <cmath>
#include <cstring>

#include "models/init.h"
#include "src/core/bf16.h"
#include "src/optim/params.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

Tensor to_dtype(const Tensor& t, DType dt) {
  Tensor o = Tensor::empty(t.shape(), dt);
  cpu().cast(t, o);
  return o;
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808000u)), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F818000u)), 0x3F82);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808001u)), 0x3F81);  // just above half: up
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(f32_to_bf16(3.4e38f), 0x7F80);  // beyond bf16's largest finite: rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
}

// bf16 keeps 8 significant bits: rounding to nearest is off by at most 2^-8 of the value.
TEST(Bf16, CastRoundTripsWithinHalfAnUlp) {
  Tensor x = randn({1000}, DType::F32, "cast");
  Tensor h = to_dtype(x, DType::BF16), back = to_dtype(h, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float a = x.data<float>()[i], b = back.data<float>()[i];
    EXPECT_LE(std::abs(a - b), std::abs(a) * std::ldexp(1.0, -8)) << i;
  }
  // bf16 -> f32 -> bf16 is exact, and f64 goes through f32 on its way to bf16.
  Tensor again = to_dtype(back, DType::BF16);
  EXPECT_EQ(std::memcmp(again.raw(), h.raw(), h.nbytes()), 0);
  Tensor from64 = to_dtype(to_dtype(x, DType::F64), DType::BF16);
  EXPECT_EQ(std::memcmp(from64.raw(), h.raw(), h.nbytes()), 0);
}

// An op on bf16 storage = the f32 op on the widened values, rounded once at the end.
TEST(Bf16, OpsComputeInF32AndRoundOnce) {
  Tensor h32 = to_dtype(to_dtype(randn({5, 7}, DType::F32, "gelu"), DType::BF16), DType::F32);
  Tensor h16 = to_dtype(h32, DType::BF16);
  Tensor a16 = Tensor::empty({5, 7}, DType::BF16), a32 = Tensor::empty({5, 7}, DType::F32);
  cpu().gelu_forward(h16, a16, ops::Gelu::Erf);
  cpu().gelu_forward(h32, a32, ops::Gelu::Erf);
  Tensor want = to_dtype(a32, DType::BF16);
  EXPECT_EQ(std::memcmp(want.raw(), a16.raw(), a16.nbytes()), 0);
}

TEST(Bf16, GemmWritesF32FromBf16Operands) {
  Tensor a = to_dtype(randn({6, 16}, DType::F32, "ga"), DType::BF16);
  Tensor b = to_dtype(randn({5, 16}, DType::F32, "gb"), DType::BF16);
  Tensor c = randn({6, 5}, DType::F32, "gc"), want = c.clone();
  cpu().gemm(a, false, b, true, c, 0.5, 1.0);  // f32 C from bf16 A, B
  cpu().gemm(to_dtype(a, DType::F32), false, to_dtype(b, DType::F32), true, want, 0.5, 1.0);
  for (int64_t i = 0; i < c.numel(); ++i) EXPECT_FLOAT_EQ(c.data<float>()[i], want.data<float>()[i]);

  // Grouped dW += dy^T x into an f32 gradient.
  Tensor dy = to_dtype(randn({7, 3}, DType::F32, "gdy"), DType::BF16);
  Tensor x = to_dtype(randn({7, 4}, DType::F32, "gx"), DType::BF16);
  Tensor dw = Tensor::zeros({2, 3, 4}, DType::F32), dw_want = dw.clone();
  std::vector<ops::Segment> segs = {{0, 3, 1}, {3, 7, 0}};
  cpu().grouped_gemm_tn(dy, x, segs, dw, 2.0);
  cpu().grouped_gemm_tn(to_dtype(dy, DType::F32), to_dtype(x, DType::F32), segs, dw_want, 2.0);
  for (int64_t i = 0; i < dw.numel(); ++i) EXPECT_FLOAT_EQ(dw.data<float>()[i], dw_want.data<float>()[i]);
}

// The init the model uses (Backend::init_normal over init_stream's streams) is the formula the
// host init always had: std * normal(key(seed, name), element, 1 + global expert), as f32.
TEST(Bf16, InitNormalIsTheHostFormula) {
  optim::ParamStore ps;
  optim::Param* d = ps.add("dense", optim::Group::AttnQKV, {3, 5});
  optim::Param* e = ps.add("blocks.0.moe.expert_up", optim::Group::ExpertUp, {2, 3, 4}, true, 6);
  ps.allocate(DType::F32, Device::CPU, DType::BF16);
  for (optim::Param* p : {d, e}) {
    const int64_t units = p->expert ? p->shape[0] : 1, per = p->numel() / units;
    std::vector<uint32_t> streams;
    for (int64_t u = 0; u < units; ++u) streams.push_back(models::init_stream(*p, u));
    const rng::Key key = rng::make_key(42, p->name);
    cpu().init_normal(p->value, key, per, streams, 0.02);
    for (int64_t u = 0; u < units; ++u)
      for (int64_t i = 0; i < per; ++i) {
        const uint32_t stream = p->expert ? uint32_t(1 + p->expert_offset + u) : 0u;
        const float want = static_cast<float>(0.02 * rng::normal(key, i, stream));
        EXPECT_EQ(p->value.data<float>()[u * per + i], want) << p->name << " " << u << " " << i;
      }
  }
  EXPECT_EQ(models::init_stream(*e, 1), 8u);  // 1 + expert_offset 6 + local 1
  // The compute copies are the master values rounded to bf16, after refresh_compute only.
  ps.refresh_compute(cpu());
  ASSERT_EQ(e->compute.dtype(), DType::BF16);
  Tensor want = to_dtype(e->value, DType::BF16);
  EXPECT_EQ(std::memcmp(want.raw(), e->compute.raw(), want.nbytes()), 0);
  optim::ParamStore same;
  optim::Param* s = same.add("w", optim::Group::AttnQKV, {2, 2});
  same.allocate(DType::F32, Device::CPU);
  EXPECT_EQ(s->compute.raw(), s->value.raw()) << "without mixed precision the copy aliases";
}

}  // namespace
}  // namespace moe::test
