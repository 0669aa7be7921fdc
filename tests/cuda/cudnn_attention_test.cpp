// cuDNN's fused causal attention (src/ops/cuda/cudnn/) against the CPU reference and against
// our own CUDA kernels, bf16, from the same bf16 inputs: out, lse and dqkv. Also: either
// backward runs from either forward's lse (the two store the same log-sum-exp), two runs give
// the same bits, the backward writes every element of dqkv, and Auto sends bf16 to cuDNN and
// f32 or an odd head to our kernels. Skips without a GPU, and without a loadable cuDNN.
//
// Tolerances (normalized error, relative L2, cuda_test_util.h), bf16 inputs on every side:
//  - out 1e-2: cuDNN rounds the probabilities to bf16 for the tensor-core P V product and the
//    result to bf16 (2^-9 relative each, ~2e-3 in the L2 measure); the CPU keeps f32 throughout.
//  - lse 1e-3: f32 on every side and computed from the same bf16 q, k with f32 accumulation,
//    so only summation order and exp approximations differ (~1e-6); 1e-3 still catches any
//    other convention (a base-2 log would be off by 44%, a row max instead of the log-sum-exp
//    by ln of the row's effective count).
//  - dqkv 2e-2: as out, plus the bf16 rounding of dS for the dQ and dK products and of the
//    stored out that delta = dO . O is computed from (the suite's bf16 tolerance, ops_test.cpp).
//  Against our own kernels, which are within these of the CPU themselves: twice as much.
#include <cmath>

#include "tests/cuda/cuda_test_util.h"

namespace moe::test {
namespace {

using ops::gpu::AttentionImpl;

constexpr double kTolOut = 1e-2, kTolLse = 1e-3, kTolGrad = 2e-2;

struct Shape4 {
  int B, T, H, D;
};

std::string shape_name(const Shape4& s) {
  return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_H" + std::to_string(s.H) +
         "_D" + std::to_string(s.D);
}

// Sets the backend's attention implementation for one scope.
struct ImplGuard {
  ops::gpu::CudaBackend& g;
  AttentionImpl old;
  ImplGuard(ops::gpu::CudaBackend& be, AttentionImpl m) : g(be), old(be.attention_impl()) {
    g.set_attention_impl(m);
  }
  ~ImplGuard() { g.set_attention_impl(old); }
};

// One causal attention's inputs on the host (f32 holding bf16-rounded values on the way in).
struct Inputs {
  Shape4 s;
  Tensor qkv, dout;  // host f32
  int64_t N() const { return int64_t(s.H) * s.D; }
  int64_t n() const { return int64_t(s.B) * s.T; }
  double scale() const { return 1.0 / std::sqrt(double(s.D)); }
};

Inputs make_inputs(const Shape4& s) {
  Inputs in{s, {}, {}};
  in.qkv = randn({in.n(), 3 * in.N()}, DType::F32, "cudnn qkv " + shape_name(s));
  in.dout = randn({in.n(), in.N()}, DType::F32, "cudnn dout " + shape_name(s));
  return in;
}

// The three results on the host as f32: out, lse, dqkv.
struct Result {
  Tensor out, lse, dqkv;
};

Result run_cpu(const Inputs& in) {
  ops::Backend& be = cpu();
  Tensor qkv = to_backend(in.qkv, Device::CPU, DType::BF16);
  Tensor dout = to_backend(in.dout, Device::CPU, DType::BF16);
  Result r{Tensor::empty({in.n(), in.N()}, DType::F32),
           Tensor::empty({in.s.B, in.s.H, in.s.T}, DType::F32),
           Tensor::empty({in.n(), 3 * in.N()}, DType::F32)};
  be.flash_attention_forward(qkv, r.out, r.lse, in.s.B, in.s.T, in.s.H, in.scale());
  be.flash_attention_backward(qkv, r.out, r.lse, dout, r.dqkv, in.s.B, in.s.T, in.s.H, in.scale());
  return r;
}

// Forward with `fwd`, backward with `bwd` (each Own or Cudnn), checking that each ran. The
// gradient buffer starts as NaN, so an element the backward skips shows.
Result run_gpu(ops::gpu::CudaBackend& g, const Inputs& in, AttentionImpl fwd, AttentionImpl bwd) {
  Tensor qkv = to_backend(in.qkv, Device::CUDA, DType::BF16);
  Tensor dout = to_backend(in.dout, Device::CUDA, DType::BF16);
  Tensor out = Tensor::empty({in.n(), in.N()}, DType::BF16, Device::CUDA);
  Tensor lse = Tensor::empty({in.s.B, in.s.H, in.s.T}, DType::F32, Device::CUDA);
  Tensor dqkv = Tensor::empty({in.n(), 3 * in.N()}, DType::BF16, Device::CUDA);
  g.fill(dqkv, std::nan(""));
  {
    ImplGuard guard(g, fwd);
    g.flash_attention_forward(qkv, out, lse, in.s.B, in.s.T, in.s.H, in.scale());
    EXPECT_EQ(g.last_attention_impl(), fwd);
  }
  {
    ImplGuard guard(g, bwd);
    g.flash_attention_backward(qkv, out, lse, dout, dqkv, in.s.B, in.s.T, in.s.H, in.scale());
    EXPECT_EQ(g.last_attention_impl(), bwd);
  }
  g.synchronize();
  return {to_host(out), to_host(lse), to_host(dqkv)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::abs(double(a.data<float>()[i]) - double(b.data<float>()[i])));
  return m;
}

int64_t non_finite(const Tensor& t) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(t.data<float>()[i]);
  return bad;
}

void expect_close(const Result& got, const Result& want, double factor, const std::string& what) {
  const struct {
    const char* name;
    const Tensor& a;
    const Tensor& b;
    double tol;
  } outs[] = {{"out", got.out, want.out, kTolOut},
              {"lse", got.lse, want.lse, kTolLse},
              {"dqkv", got.dqkv, want.dqkv, kTolGrad}};
  for (const auto& o : outs) {
    const double err = normalized_error(o.a, o.b), tol = factor * o.tol;
    std::printf("  %-40s %-5s err %.3e  tol %.0e  max|diff| %.3e  %s\n", what.c_str(), o.name, err,
                tol, max_abs_diff(o.a, o.b), err <= tol ? "OK" : "FAIL");
    EXPECT_LE(err, tol) << what << " " << o.name;
  }
}

class CudnnSdpa : public CudaTest, public ::testing::WithParamInterface<Shape4> {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    if (!gpu().cudnn_attention_available())
      GTEST_SKIP() << "cuDNN attention unavailable: " << gpu().cudnn_why();
  }
};

TEST_P(CudnnSdpa, MatchesCpuAndOwnKernels) {
  const Inputs in = make_inputs(GetParam());
  const Result ref = run_cpu(in);
  const Result cudnn = run_gpu(gpu(), in, AttentionImpl::Cudnn, AttentionImpl::Cudnn);
  const Result own = run_gpu(gpu(), in, AttentionImpl::Own, AttentionImpl::Own);
  EXPECT_EQ(non_finite(cudnn.dqkv), 0) << "dqkv elements the cuDNN backward left unwritten";
  expect_close(cudnn, ref, 1, "cudnn vs cpu " + shape_name(in.s));
  expect_close(own, ref, 1, "own vs cpu " + shape_name(in.s));
  expect_close(cudnn, own, 2, "cudnn vs own " + shape_name(in.s));
}

// The lse is the same quantity on both paths: each backward from the other's forward.
TEST_P(CudnnSdpa, EitherBackwardFromEitherForward) {
  const Inputs in = make_inputs(GetParam());
  const Result ref = run_cpu(in);
  expect_close(run_gpu(gpu(), in, AttentionImpl::Cudnn, AttentionImpl::Own), ref, 1,
               "cudnn fwd, own bwd " + shape_name(in.s));
  expect_close(run_gpu(gpu(), in, AttentionImpl::Own, AttentionImpl::Cudnn), ref, 1,
               "own fwd, cudnn bwd " + shape_name(in.s));
}

TEST_P(CudnnSdpa, Deterministic) {
  const Inputs in = make_inputs(GetParam());
  const Result a = run_gpu(gpu(), in, AttentionImpl::Cudnn, AttentionImpl::Cudnn);
  const Result b = run_gpu(gpu(), in, AttentionImpl::Cudnn, AttentionImpl::Cudnn);
  EXPECT_TRUE(same_bits(a.out, b.out));
  EXPECT_TRUE(same_bits(a.lse, b.lse));
  EXPECT_TRUE(same_bits(a.dqkv, b.dqkv)) << "two cuDNN backwards differ";
}

// B = 2 with T 64 / 128, H 2 / 4, D 32 / 64; T = 70 (no multiple of cuDNN's 64- and 128-row
// tiles) and D = 128 (the largest head either path takes), D = 8 (the smallest cuDNN takes).
INSTANTIATE_TEST_SUITE_P(Shapes, CudnnSdpa,
                         ::testing::Values(Shape4{2, 64, 2, 32}, Shape4{2, 64, 4, 64},
                                           Shape4{2, 128, 2, 64}, Shape4{2, 128, 4, 32},
                                           Shape4{2, 70, 3, 16}, Shape4{1, 100, 2, 128},
                                           Shape4{2, 33, 2, 8}),
                         [](const ::testing::TestParamInfo<Shape4>& i) {
                           return shape_name(i.param);
                         });

// Auto: bf16 with a head cuDNN takes goes to cuDNN; f32, or a head of 20, to our kernels.
// Cudnn refuses (moe::Error) what cuDNN cannot take instead of quietly running ours.
class CudnnAttentionDispatch : public CudaTest {};

TEST_F(CudnnAttentionDispatch, AutoChoosesAndCudnnModeRefuses) {
  auto run = [&](DType dt, int H, int D) {
    const int B = 2, T = 40;
    const int64_t N = int64_t(H) * D;
    Tensor qkv = to_backend(randn({B * T, 3 * N}, DType::F32, "dispatch qkv"), Device::CUDA, dt);
    Tensor out = Tensor::empty({B * T, N}, dt, Device::CUDA);
    Tensor lse = Tensor::empty({B, H, T}, DType::F32, Device::CUDA);
    gpu().flash_attention_forward(qkv, out, lse, B, T, H, 0.2);
    return gpu().last_attention_impl();
  };
  const bool have = gpu().cudnn_attention_available();
  {
    ImplGuard guard(gpu(), AttentionImpl::Auto);
    EXPECT_EQ(run(DType::BF16, 2, 32), have ? AttentionImpl::Cudnn : AttentionImpl::Own);
    EXPECT_EQ(run(DType::F32, 2, 32), AttentionImpl::Own);
    EXPECT_EQ(run(DType::BF16, 2, 20), AttentionImpl::Own);
  }
  {
    ImplGuard guard(gpu(), AttentionImpl::Own);
    EXPECT_EQ(run(DType::BF16, 2, 32), AttentionImpl::Own);
  }
  ImplGuard guard(gpu(), AttentionImpl::Cudnn);
  EXPECT_THROW(run(DType::F32, 2, 32), Error);
  EXPECT_THROW(run(DType::BF16, 2, 20), Error);
  if (have) EXPECT_EQ(run(DType::BF16, 2, 32), AttentionImpl::Cudnn);
  else EXPECT_THROW(run(DType::BF16, 2, 32), Error);
}

}  // namespace
}  // namespace moe::test
