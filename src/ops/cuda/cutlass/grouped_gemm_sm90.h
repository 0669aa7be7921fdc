// CUTLASS's Hopper grouped GEMM for the expert GEMMs: bf16 operands, f32 accumulation, one
// persistent warp-specialized kernel (TMA loads, wgmma) over every expert's problem, its tile
// scheduler walking the groups on the device. This is the kernel behind PyTorch's
// torch._grouped_mm on sm_90, which ran at 70-83 % of a dense GEMM of the same FLOPs on uneven
// expert loads on an H100, where cublasGemmGroupedBatchedEx ran at ~40 % (docs/gpu-machine.md).
//
// The three row-major forms of the expert layer, problem i being segment (begin, end, group):
//   NT  y[begin:end]  (rows x out) = alpha x[begin:end] (rows x in) W[g]^T           (forward)
//   NN  dx[begin:end] (rows x in)  = alpha dy[begin:end] (rows x out) W[g] + beta dx  (input grad)
//   TN  dW[g] (out x in, f32)      = alpha dy[begin:end]^T x[begin:end] + beta dW[g]  (weight grad)
// W is (groups, out, in) row-major. NT and NN write bf16, TN writes f32 (the gradient).
//
// The segment table (3 int64 per problem) is the only thing the host sends: a small kernel
// builds the problem shapes, the operand pointers and the strides from it in device memory, as
// torch._grouped_mm builds them from its offsets, and CUTLASS reads them there (no host copy of
// the shapes). This header is plain C++ so that the backend (compiled for every architecture)
// can call the sm_90a-only translation unit; its functions exist only in a build with CUTLASS
// (MOE_HAVE_CUTLASS), the Form enum in every CUDA build.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::ops::gpu::sm90 {

enum class Form { NT, NN, TN };
inline const char* form_name(Form f) { return f == Form::NT ? "NT" : f == Form::NN ? "NN" : "TN"; }

struct GroupedGemmArgs {
  Form form = Form::NT;
  const void* act = nullptr;   // NT: x; NN: dy; TN: dy (bf16)
  const void* other = nullptr; // NT, NN: W (groups, out, in); TN: x (bf16)
  void* out = nullptr;         // NT: y; NN: dx (bf16); TN: dW (groups, out, in) f32
  int64_t out_features = 0;    // W.dim(1)
  int64_t in_features = 0;     // W.dim(2)
  float alpha = 1.f, beta = 0.f;
  const int64_t* segments = nullptr;  // device: (begin, end, group) per problem, none empty
  int problems = 0;
};

// Whether the shapes fit the kernel's TMA rules: every leading dimension (in, out) a multiple
// of 8 bf16 elements (16 bytes), so that each segment's first row is 16-byte aligned too.
bool shapes_supported(int64_t out_features, int64_t in_features);

// Device bytes run() needs for `problems` problems on `sm_count` SMs (argument arrays and
// CUTLASS's scheduler workspace), 256-byte aligned pieces.
size_t workspace_bytes(Form form, int problems, int sm_count);

// Enqueues the grouped GEMM on `stream`; returns nullptr, or what failed (CUTLASS's
// can_implement / initialize / run, or a launch error).
const char* run(const GroupedGemmArgs& args, void* workspace, size_t workspace_size,
                int sm_count, cudaStream_t stream);

}  // namespace moe::ops::gpu::sm90
