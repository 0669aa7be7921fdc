// Which fused-attention calls go to cuDNN's SDPA, and the key its graphs are cached by. Pure
// logic with no CUDA or cuDNN header, so the CPU unit tests check it
// (tests/unit/cudnn_sdpa_support_test.cpp) on machines without either.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>

#include "src/core/dtype.h"

namespace moe::ops::gpu {

// Alignment cuDNN's SDPA kernels need of every pointer and every stride in bytes: they move
// Q, K, V, O (and the gradients) with 16-byte vector loads and TMA, and cudnn-frontend refuses
// an unaligned pointer only at execute time, after we have committed to cuDNN for the call.
constexpr int64_t kSdpaAlign = 16;
// Largest head cuDNN 9's bf16 SDPA takes forward and backward on every architecture (up to
// 256 needs a newer cuDNN per architecture); our own kernels stop at 128 too, so whatever
// cuDNN declines always has them to fall back on.
constexpr int64_t kSdpaMaxHead = 128;

// Null when cuDNN's SDPA takes a causal attention over qkv (B*T, 3N) with H heads of D = N/H
// whose tensors (qkv, out, lse, ...) start at `ptrs`; otherwise why not, for the error that
// the Cudnn mode raises. Only bf16: cuDNN's
// SDPA computes in fp16 / bf16 (and fp8), so f32 attention stays on our kernels. D a multiple
// of 8 keeps every row stride (3N, N elements of 2 bytes) and the K and V offsets (N, 2N) on
// 16 bytes when the base pointers are.
inline const char* sdpa_declined(DType dt, int64_t B, int64_t T, int64_t H, int64_t D,
                                 std::initializer_list<const void*> ptrs) {
  if (dt != DType::BF16) return "cuDNN's fused attention is used for bf16 only";
  if (B <= 0 || T <= 0 || H <= 0 || D <= 0) return "empty attention";
  if (D % 8 != 0) return "head dimension not a multiple of 8";
  if (D > kSdpaMaxHead) return "head dimension above 128";
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % kSdpaAlign != 0) return "a tensor not 16-byte aligned";
  return nullptr;
}

// The step of a graph's build (cudnn_attention.cpp) that failed, for sdpa_failure_final.
enum class SdpaStep {
  Validate,
  OperationGraph,
  Heuristics,
  CheckSupport,
  BuildPlans,
  Workspace,
  Threw,  // the frontend threw (a missing cuDNN symbol, say)
};

// Attempts at building one shape's graph before Auto leaves that shape to our kernels for good.
constexpr int kSdpaBuildTries = 3;

// Whether a failed graph build is remembered for its shape (Auto then runs our kernels for it
// without asking cuDNN again) or tried again at the shape's next call, `tries` being the
// attempts so far, this one included. validate and check_support judge the graph against
// cuDNN's support surface, which a shape meets the same way every time: final at once. The
// other steps allocate (the operation graph, the heuristics' engine configs, the plans, some
// compiled at run time) and can fail for a moment, an out-of-memory while a step's activations
// are live, say; caching that forever would leave the shape on our slower kernels for the
// rest of the run, so they are retried, up to kSdpaBuildTries attempts.
inline bool sdpa_failure_final(SdpaStep step, int tries) {
  return step == SdpaStep::Validate || step == SdpaStep::CheckSupport || tries >= kSdpaBuildTries;
}

// A graph is built for one shape and scale (cuDNN bakes both in) and one direction; the
// tensors' addresses change from call to call and go in the variant pack instead.
struct SdpaKey {
  int64_t B = 0, T = 0, H = 0, D = 0;
  uint32_t scale_bits = 0;  // the float scale's bits: 0.125f and the next float differ
  bool backward = false;

  static SdpaKey of(int64_t B, int64_t T, int64_t H, int64_t D, float scale, bool backward) {
    SdpaKey k{B, T, H, D, 0, backward};
    std::memcpy(&k.scale_bits, &scale, sizeof(scale));
    return k;
  }
  bool operator==(const SdpaKey&) const = default;
};

struct SdpaKeyHash {
  size_t operator()(const SdpaKey& k) const {
    size_t h = 0;
    for (uint64_t v : {uint64_t(k.B), uint64_t(k.T), uint64_t(k.H), uint64_t(k.D),
                       uint64_t(k.scale_bits), uint64_t(k.backward)})
      h = h * 1000003u ^ std::hash<uint64_t>{}(v);
    return h;
  }
};

}  // namespace moe::ops::gpu
