// CUTLASS's Hopper grouped GEMM (src/ops/cuda/cutlass/) against the CPU reference and against
// cuBLAS's grouped call, on the expert layer's three forms with bf16 operands: uneven and empty
// segments, several segments per expert (the EP layout, so TN runs in waves), beta != 0.
// The GPU cases skip unless this build has CUTLASS and the GPU is sm_90; the host-side rules
// (which shapes go to CUTLASS, the workspace) run wherever the CUDA build does, CI included.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/cuda/cuda_test_util.h"
#ifdef MOE_HAVE_CUTLASS
#include "src/ops/cuda/cutlass/grouped_gemm_sm90.h"
#endif

namespace moe::test {
namespace {

using ops::gpu::GroupedGemmMode;
using ops::gpu::GroupedPath;

#ifdef MOE_HAVE_CUTLASS
TEST(CutlassGroupedGemm, ShapeRulesAndWorkspace) {
  namespace sm90 = ops::gpu::sm90;
  // TMA needs every leading dimension 16-byte aligned: widths multiples of 8 bf16 elements.
  EXPECT_TRUE(sm90::shapes_supported(512, 1024));
  EXPECT_TRUE(sm90::shapes_supported(8, 8));
  EXPECT_FALSE(sm90::shapes_supported(20, 512));
  EXPECT_FALSE(sm90::shapes_supported(512, 1020));
  EXPECT_FALSE(sm90::shapes_supported(0, 512));
  // The workspace holds the argument arrays (a shape, three pointers, three strides per
  // problem) and grows with the problem count; it is host arithmetic, no device needed.
  for (sm90::Form f : {sm90::Form::NT, sm90::Form::NN, sm90::Form::TN}) {
    const size_t one = sm90::workspace_bytes(f, 1, 132), many = sm90::workspace_bytes(f, 600, 132);
    EXPECT_GE(one, 7u * 256u);
    EXPECT_GE(many, 600u * (3 * 4 + 3 * 8 + 3 * 8));
    EXPECT_GT(many, one);
  }
}
#endif

// Expert segments: E experts per source rank over `sources` ranks, source-major as the
// dispatcher lays them out, counts uneven and some zero.
std::vector<ops::Segment> expert_segments(int sources, int E, int64_t mean, int64_t* rows) {
  std::vector<int32_t> cnt = rand_ints(sources * E, int32_t(2 * mean), "cutlass_counts");
  std::vector<ops::Segment> s;
  int64_t r = 0;
  for (int src = 0; src < sources; ++src)
    for (int e = 0; e < E; ++e) {
      const int64_t c = cnt[size_t(src * E + e)] < mean / 8 ? 0 : cnt[size_t(src * E + e)];
      s.push_back({r, r + c, e});
      r += c;
    }
  *rows = r;
  return s;
}

struct GemmShape {
  std::string name;
  int sources, E;
  int64_t mean, in, out;
};

class CutlassGemm : public CudaTest, public ::testing::WithParamInterface<GemmShape> {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    if (!gpu().cutlass_available())
      GTEST_SKIP() << "this build has no CUTLASS kernels or the GPU is not compute capability 9.0";
  }
  // Runs fn on the GPU in `mode`, returning how many CUTLASS calls it made.
  template <class F>
  int64_t on_gpu(GroupedGemmMode mode, F fn) {
    ops::gpu::GroupedModeScope scope(gpu(), mode);
    const int64_t before = gpu().grouped_path_calls(GroupedPath::Cutlass);
    fn();
    gpu().synchronize();
    return gpu().grouped_path_calls(GroupedPath::Cutlass) - before;
  }
};

// bf16 results: each output is rounded once to bf16 (relative 2^-9) after an f32 sum whose
// order differs from the CPU's; 1e-2 normalized error leaves room for both. f32 results (TN)
// only see the summation order: 1e-4.
constexpr double kTolBf16Out = 1e-2, kTolF32Out = 1e-4;

TEST_P(CutlassGemm, ThreeFormsMatchCpuAndCublas) {
  const GemmShape& p = GetParam();
  int64_t rows = 0;
  const std::vector<ops::Segment> segs = expert_segments(p.sources, p.E, p.mean, &rows);
  const int64_t E = p.E, in = p.in, out = p.out;
  ops::Backend& cpu = *ops::make_cpu_backend();
  auto host = [&](std::initializer_list<int64_t> shape, const std::string& name) {
    return randn(Shape(shape), DType::F32, name, 1.0);
  };
  const Tensor hx = host({rows, in}, "cx"), hdy = host({rows, out}, "cdy"),
               hw = host({E, out, in}, "cw"), hdx0 = host({rows, in}, "cdx0"),
               hdw0 = host({E, out, in}, "cdw0");
  auto cpu_in = [&](const Tensor& h) { return to_backend(h, Device::CPU, DType::BF16); };
  auto gpu_in = [&](const Tensor& h) { return to_backend(h, Device::CUDA, DType::BF16); };

  // NT: y = 1.3 x W^T.
  Tensor y_ref = Tensor::empty({rows, out}, DType::F32);
  cpu.grouped_gemm_nt(cpu_in(hx), cpu_in(hw), segs, y_ref, 1.3);
  Tensor x = gpu_in(hx), w = gpu_in(hw), dy = gpu_in(hdy);
  Tensor y = Tensor::empty({rows, out}, DType::BF16, Device::CUDA);
  Tensor y_cublas = Tensor::empty({rows, out}, DType::BF16, Device::CUDA);
  EXPECT_EQ(on_gpu(GroupedGemmMode::Cutlass, [&] { gpu().grouped_gemm_nt(x, w, segs, y, 1.3); }), 1);
  EXPECT_EQ(on_gpu(GroupedGemmMode::Grouped, [&] { gpu().grouped_gemm_nt(x, w, segs, y_cublas, 1.3); }), 0);
  EXPECT_LE(normalized_error(to_host(y), y_ref), kTolBf16Out) << "NT against the CPU";
  EXPECT_LE(normalized_error(to_host(y), to_host(y_cublas)), kTolBf16Out) << "NT against cuBLAS";

  // NN: dx = 0.7 dy W + 0.5 dx0 (the SwiGLU backward adds into dx), and with beta 0.
  for (double beta : {0.0, 0.5}) {
    Tensor dx_ref = cpu_in(hdx0);
    cpu.grouped_gemm_nn(cpu_in(hdy), cpu_in(hw), segs, dx_ref, 0.7, beta);
    Tensor dx = gpu_in(hdx0), dx_cublas = gpu_in(hdx0);
    EXPECT_EQ(on_gpu(GroupedGemmMode::Cutlass, [&] { gpu().grouped_gemm_nn(dy, w, segs, dx, 0.7, beta); }), 1);
    on_gpu(GroupedGemmMode::Grouped, [&] { gpu().grouped_gemm_nn(dy, w, segs, dx_cublas, 0.7, beta); });
    EXPECT_LE(normalized_error(to_host(dx), dx_ref), kTolBf16Out) << "NN beta " << beta;
    EXPECT_LE(normalized_error(to_host(dx), to_host(dx_cublas)), kTolBf16Out) << "NN beta " << beta;
  }

  // TN: dW (f32) += 0.9 dy^T x, one call per wave (the most segments any expert has).
  Tensor dw_ref = hdw0.clone();
  cpu.grouped_gemm_tn(cpu_in(hdy), cpu_in(hx), segs, dw_ref, 0.9);
  Tensor dw = hdw0.to(Device::CUDA), dw_cublas = hdw0.to(Device::CUDA);
  std::vector<int> per_expert(size_t(E), 0);
  int waves = 0;
  for (const ops::Segment& s : segs)
    if (s.end > s.begin) waves = std::max(waves, ++per_expert[size_t(s.group)]);
  EXPECT_EQ(on_gpu(GroupedGemmMode::Cutlass, [&] { gpu().grouped_gemm_tn(dy, x, segs, dw, 0.9); }), waves);
  // cuBLAS's grouped call takes no bf16 operands with an f32 result: the loop of cublasGemmEx
  // is the cuBLAS side here, and forcing the grouped call is an error, not a silent loop.
  on_gpu(GroupedGemmMode::Loop, [&] { gpu().grouped_gemm_tn(dy, x, segs, dw_cublas, 0.9); });
  EXPECT_THROW(on_gpu(GroupedGemmMode::Grouped, [&] { gpu().grouped_gemm_tn(dy, x, segs, dw_cublas, 0.9); }),
               Error);
  EXPECT_LE(normalized_error(to_host(dw), dw_ref), kTolF32Out) << "TN against the CPU";
  EXPECT_LE(normalized_error(to_host(dw), to_host(dw_cublas)), kTolF32Out) << "TN against cuBLAS";

  // Deterministic: the same call twice gives the same bits (no split-K, no atomics).
  Tensor y2 = Tensor::empty({rows, out}, DType::BF16, Device::CUDA);
  on_gpu(GroupedGemmMode::Cutlass, [&] { gpu().grouped_gemm_nt(x, w, segs, y2, 1.3); });
  EXPECT_TRUE(same_bits(y, y2));
}

// Shapes: tiny experts (fewer rows than a tile, many empty), the EP layout of four sources,
// and widths like config A's experts at a reduced token count.
INSTANTIATE_TEST_SUITE_P(Shapes, CutlassGemm,
                         ::testing::Values(GemmShape{"tiny", 1, 8, 5, 24, 40},
                                           GemmShape{"ep4x8", 4, 8, 70, 64, 96},
                                           GemmShape{"wide", 1, 16, 300, 512, 1024},
                                           GemmShape{"tall_k", 2, 4, 900, 256, 128}),
                         [](const ::testing::TestParamInfo<GemmShape>& i) { return i.param.name; });

}  // namespace
}  // namespace moe::test
