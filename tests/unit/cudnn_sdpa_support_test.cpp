// Which fused-attention calls the CUDA backend may hand to cuDNN (src/ops/cuda/cudnn/
// sdpa_support.h), and the key its graphs are cached by. Pure logic: runs without CUDA or cuDNN.
#include <cmath>
#include <iterator>
#include <unordered_set>

#include "src/ops/cuda/cudnn/sdpa_support.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

using ops::gpu::sdpa_declined;
using ops::gpu::sdpa_failure_final;
using ops::gpu::SdpaStep;
using ops::gpu::SdpaKey;
using ops::gpu::SdpaKeyHash;

// A 16-byte aligned address and one 2 bytes past it (a bf16 element later).
alignas(16) const char kBuf[64] = {};
const void* aligned() { return kBuf; }
const void* off_by_2() { return kBuf + 2; }

TEST(CudnnSdpaSupport, Bf16HeadsOfMultiplesOf8UpTo128) {
  for (int64_t D : {8, 16, 32, 64, 96, 128})
    EXPECT_EQ(sdpa_declined(DType::BF16, 2, 64, 4, D, {aligned()}), nullptr) << D;
  for (int64_t D : {4, 20, 36, 100, 136, 256})
    EXPECT_NE(sdpa_declined(DType::BF16, 2, 64, 4, D, {aligned()}), nullptr) << D;
}

TEST(CudnnSdpaSupport, F32AndOtherDtypesStayOnOurKernels) {
  for (DType dt : {DType::F32, DType::F64, DType::I32})
    EXPECT_NE(sdpa_declined(dt, 2, 64, 4, 32, {aligned()}), nullptr);
}

TEST(CudnnSdpaSupport, AnyTAndBatchButNotEmpty) {
  for (int64_t T : {1, 33, 70, 128, 4096})
    EXPECT_EQ(sdpa_declined(DType::BF16, 3, T, 2, 64, {aligned()}), nullptr) << T;
  EXPECT_NE(sdpa_declined(DType::BF16, 0, 64, 2, 64, {aligned()}), nullptr);
  EXPECT_NE(sdpa_declined(DType::BF16, 2, 0, 2, 64, {aligned()}), nullptr);
  EXPECT_NE(sdpa_declined(DType::BF16, 2, 64, 0, 64, {aligned()}), nullptr);
}

// Every tensor's address must be on 16 bytes (a view starting mid-row would not be).
TEST(CudnnSdpaSupport, EveryPointerAligned) {
  EXPECT_EQ(sdpa_declined(DType::BF16, 2, 64, 4, 32, {aligned(), aligned(), aligned()}), nullptr);
  EXPECT_NE(sdpa_declined(DType::BF16, 2, 64, 4, 32, {aligned(), off_by_2(), aligned()}), nullptr);
  EXPECT_NE(sdpa_declined(DType::BF16, 2, 64, 4, 32, {aligned(), aligned(), off_by_2()}), nullptr);
}

// Graphs bake in shape, scale and direction: each must give a different key, and equal
// calls the same key (and hash).
TEST(CudnnSdpaSupport, GraphKeySeparatesShapeScaleAndDirection) {
  const SdpaKey base = SdpaKey::of(2, 64, 4, 32, 0.125f, false);
  EXPECT_EQ(base, SdpaKey::of(2, 64, 4, 32, 0.125f, false));
  EXPECT_EQ(SdpaKeyHash{}(base), SdpaKeyHash{}(SdpaKey::of(2, 64, 4, 32, 0.125f, false)));
  const SdpaKey others[] = {
      SdpaKey::of(3, 64, 4, 32, 0.125f, false), SdpaKey::of(2, 65, 4, 32, 0.125f, false),
      SdpaKey::of(2, 64, 2, 32, 0.125f, false), SdpaKey::of(2, 64, 4, 64, 0.125f, false),
      SdpaKey::of(2, 64, 4, 32, std::nextafter(0.125f, 1.f), false),
      SdpaKey::of(2, 64, 4, 32, 0.125f, true),
      SdpaKey::of(2, 64, 8, 16, 0.125f, false)};  // the same width N = H D, other heads
  std::unordered_set<SdpaKey, SdpaKeyHash> set{base};
  for (const SdpaKey& k : others) {
    EXPECT_FALSE(k == base);
    EXPECT_TRUE(set.insert(k).second);
  }
  EXPECT_EQ(set.size(), 1 + std::size(others));
}

// A graph outside cuDNN's support surface is declined for good at once; a failure in a step
// that allocates (a passing out-of-memory) is retried, kSdpaBuildTries attempts in all.
TEST(CudnnSdpaSupport, OnlySupportRefusalsAreFinalAtOnce) {
  for (SdpaStep s : {SdpaStep::Validate, SdpaStep::CheckSupport})
    EXPECT_TRUE(sdpa_failure_final(s, 1)) << int(s);
  for (SdpaStep s : {SdpaStep::OperationGraph, SdpaStep::Heuristics, SdpaStep::BuildPlans,
                     SdpaStep::Workspace, SdpaStep::Threw}) {
    for (int tries = 1; tries < ops::gpu::kSdpaBuildTries; ++tries)
      EXPECT_FALSE(sdpa_failure_final(s, tries)) << int(s) << " try " << tries;
    EXPECT_TRUE(sdpa_failure_final(s, ops::gpu::kSdpaBuildTries)) << int(s);
  }
}

}  // namespace
}  // namespace moe::test
