// The CUDA backend's per-call choice of grouped GEMM path (src/ops/cuda/grouped_gemm_route.h).
// Pure logic: runs without CUDA. The GPU side (tests/cuda/backend_test.cpp) checks that the
// backend follows it.
#include "src/ops/cuda/grouped_gemm_route.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

using ops::gpu::GroupedCall;
using ops::gpu::GroupedGemmMode;
using ops::gpu::GroupedPath;
using ops::gpu::route_grouped;

// A call of the expert layer under mixed precision: `problems` experts with tokens.
GroupedCall call(GroupedGemmMode mode, DType operands, DType out, bool weight_grad,
                 bool cutlass_fits, size_t problems = 8) {
  GroupedCall c;
  c.mode = mode;
  c.operands = operands;
  c.out = out;
  c.weight_grad = weight_grad;
  c.cutlass_fits = cutlass_fits;
  c.problems = problems;
  return c;
}

GroupedPath path(const GroupedCall& c) {
  const ops::gpu::GroupedRoute r = route_grouped(c);
  EXPECT_TRUE(r.refused.empty()) << r.refused;
  return r.path;
}

TEST(GroupedGemmRoute, CublasGroupedTakesOneTypeThroughout) {
  EXPECT_TRUE(ops::gpu::cublas_grouped_takes(DType::BF16, DType::BF16));
  EXPECT_TRUE(ops::gpu::cublas_grouped_takes(DType::F32, DType::F32));
  EXPECT_FALSE(ops::gpu::cublas_grouped_takes(DType::BF16, DType::F32));
  EXPECT_FALSE(ops::gpu::cublas_grouped_takes(DType::F32, DType::BF16));
  EXPECT_FALSE(ops::gpu::cublas_grouped_takes(DType::F64, DType::F64));
}

// Auto on an sm_90 GPU with CUTLASS: every bf16 form of the expert layer goes to CUTLASS, the
// weight gradient (f32 result) included; f32 training has cuBLAS's grouped call.
TEST(GroupedGemmRoute, AutoTakesCutlassWhereItFits) {
  for (GroupedGemmMode m : {GroupedGemmMode::Auto, GroupedGemmMode::Cutlass}) {
    EXPECT_EQ(path(call(m, DType::BF16, DType::BF16, false, true)), GroupedPath::Cutlass);
    EXPECT_EQ(path(call(m, DType::BF16, DType::F32, true, true)), GroupedPath::Cutlass);
    EXPECT_EQ(path(call(m, DType::F32, DType::F32, false, true)), GroupedPath::CublasGrouped);
    EXPECT_EQ(path(call(m, DType::F32, DType::F32, true, true)), GroupedPath::CublasGrouped);
  }
}

// Without CUTLASS (another GPU, widths not multiples of 8): the mixed-type weight gradient,
// which cuBLAS's grouped call does not take, runs the loop, and the other bf16 forms keep the
// grouped call.
TEST(GroupedGemmRoute, MixedTypesTakeTheLoopAndOnlyThem) {
  EXPECT_EQ(path(call(GroupedGemmMode::Auto, DType::BF16, DType::F32, true, false)),
            GroupedPath::Loop);
  EXPECT_EQ(path(call(GroupedGemmMode::Auto, DType::BF16, DType::BF16, false, false)),
            GroupedPath::CublasGrouped);
  EXPECT_EQ(path(call(GroupedGemmMode::Auto, DType::BF16, DType::BF16, true, false)),
            GroupedPath::CublasGrouped);
}

// A dtype pair that cuBLAS refused at run time takes the loop; nothing else changes.
TEST(GroupedGemmRoute, RunTimeRefusalIsPerDtypePair) {
  GroupedCall refused = call(GroupedGemmMode::Auto, DType::BF16, DType::BF16, false, false);
  refused.cublas_refused = true;
  EXPECT_EQ(path(refused), GroupedPath::Loop);
  refused.cutlass_fits = true;  // CUTLASS still takes what it fits
  EXPECT_EQ(path(refused), GroupedPath::Cutlass);
}

// Two problems or fewer, or outputs that overlap (run in order), take the loop in Auto; the
// forced modes do what they name, except that overlapping outputs always run in order.
TEST(GroupedGemmRoute, SmallCallsOverlapAndForcedModes) {
  for (size_t p : {size_t(1), ops::gpu::kLoopMaxProblems})
    EXPECT_EQ(path(call(GroupedGemmMode::Auto, DType::F32, DType::F32, false, false, p)),
              GroupedPath::Loop);
  EXPECT_EQ(path(call(GroupedGemmMode::Auto, DType::F32, DType::F32, false, false,
                      ops::gpu::kLoopMaxProblems + 1)),
            GroupedPath::CublasGrouped);
  GroupedCall overlap = call(GroupedGemmMode::Auto, DType::BF16, DType::BF16, false, true);
  overlap.independent = false;
  EXPECT_EQ(path(overlap), GroupedPath::Loop);
  overlap.mode = GroupedGemmMode::Grouped;
  EXPECT_EQ(path(overlap), GroupedPath::Loop);

  EXPECT_EQ(path(call(GroupedGemmMode::Loop, DType::BF16, DType::BF16, false, true)),
            GroupedPath::Loop);
  EXPECT_EQ(path(call(GroupedGemmMode::Grouped, DType::BF16, DType::BF16, false, true, 1)),
            GroupedPath::CublasGrouped);
}

// Forcing cuBLAS's grouped call on types it does not take is refused with the reason (the
// caller raises it), never turned into a silent loop that a benchmark would mislabel.
TEST(GroupedGemmRoute, ForcedGroupedRefusesMixedTypes) {
  const ops::gpu::GroupedRoute r =
      route_grouped(call(GroupedGemmMode::Grouped, DType::BF16, DType::F32, true, true));
  EXPECT_TRUE(Contains(r.refused, "takes A, B and C of one type"));
  EXPECT_TRUE(Contains(r.refused, "not bf16 operands with f32 results"));
}

}  // namespace
}  // namespace moe::test
