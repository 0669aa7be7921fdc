// cuDNN's fused causal attention (SDPA, FlashAttention-style on tensor cores) through
// cudnn-frontend's graph API, as the second implementation of the CUDA backend's
// flash_attention_forward / _backward for bf16 (fused_attention.cpp chooses). Owned by the
// backend, created on the first call that may use it; one cuDNN handle on the backend's stream.
//
// It reads q, k, v straight out of qkv (B*T, 3N) as strided views, writes out (B*T, N) and
// dqkv (B*T, 3N) the same way, and its Stats output is our lse (B, H, T) f32: cuDNN's Stats is
// the natural-log log-sum-exp of each query row's scaled logits, max_j s_ij + ln sum_j
// exp(s_ij - max), s = scale q k^T under the causal mask (cudnn-frontend 1.32,
// SDPA_attributes::set_stats_use_log2 documents the convention), which is what our kernels and
// the CPU reference store, so either backward runs from either forward's lse.
//
// Graphs are built per shape, scale and direction on first use and cached. A shape that cuDNN
// declines (validate or check_support fails) is remembered; a failure in the steps that
// allocate (operation graph, heuristics, plan build), which may be a passing out-of-memory, is
// tried again at the shape's next call, kSdpaBuildTries attempts in all (sdpa_support.h).
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

namespace moe::ops::gpu {

class CudnnAttention {
 public:
  // A cuDNN handle on `stream`; throws moe::Error when none can be made. cuDNN must be loaded
  // (load_cudnn) first.
  explicit CudnnAttention(cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Causal attention over qkv (B*T, 3N) bf16, N = H D: out (B*T, N) bf16 and lse (B, H, T) f32.
  // False, with nothing written and cuDNN's reason in *why, when cuDNN has no engine for the
  // shape. The caller has checked the arguments and sdpa_declined (sdpa_support.h).
  bool forward(const void* qkv, void* out, float* lse, int B, int T, int H, int D, float scale,
               std::string* why);
  // The gradient dqkv (B*T, 3N) bf16 (every element written) from qkv, the forward's out and
  // lse, and dout (B*T, N). Deterministic (cuDNN's deterministic backward: no atomics in dQ),
  // like every other op of the backend. False as for forward.
  bool backward(const void* qkv, const void* out, const float* lse, const void* dout, void* dqkv,
                int B, int T, int H, int D, float scale, std::string* why);

  // Validates the graph that forward (backward = false) or backward would build for a call,
  // against cudnn-frontend's and the loaded cuDNN's support surface for compute capability
  // sm_version (90: Hopper), with no device or handle: "" when it passes, else the frontend's
  // message. For tests on machines without a GPU; load_cudnn first. (Whether cuDNN then has
  // an engine for the graph needs the device.)
  static std::string validate_graph(int B, int T, int H, int D, float scale, bool backward,
                                    int sm_version);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::ops::gpu
