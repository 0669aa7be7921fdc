// Which path runs one grouped expert GEMM call of the CUDA backend (grouped_gemm.cpp), decided
// per call from the mode, the dtypes and what the build and the GPU offer. Pure logic with no
// CUDA header, so the CPU unit tests check it (tests/unit/grouped_gemm_route_test.cpp).
#pragma once
#include <cstddef>
#include <string>

#include "src/core/dtype.h"

namespace moe::ops::gpu {

// How the grouped expert GEMMs are issued (Auto picks; tests and `moe bench gemm` force each
// path). Auto and Cutlass take CUTLASS's Hopper grouped GEMM for every call it can run and
// otherwise behave alike: cuBLAS's grouped call for more than two problems of types it takes,
// else the loop. Loop and Grouped never take CUTLASS (the cuBLAS baselines); Grouped refuses,
// with an error, a call of types cuBLAS's grouped call does not take.
enum class GroupedGemmMode { Auto, Loop, Grouped, Cutlass };

// What ran: CUTLASS's grouped GEMM, one cublasGemmGroupedBatchedEx, or one cublasGemmEx per
// problem in order.
enum class GroupedPath { Cutlass, CublasGrouped, Loop };
constexpr int kGroupedPaths = 3;

inline const char* grouped_path_name(GroupedPath p) {
  return p == GroupedPath::Cutlass         ? "cutlass"
         : p == GroupedPath::CublasGrouped ? "cublas-grouped"
                                           : "cublas-loop";
}

// Auto: at most this many problems go through the loop (nothing to batch, and the loop saves
// the upload of the pointer arrays).
constexpr size_t kLoopMaxProblems = 2;

// cublasGemmGroupedBatchedEx is documented for A, B and C of one type, 16F, 16BF or 32F
// (compute 32F); bf16 operands with an f32 result (the weight gradient under mixed precision)
// are not among them, while cublasGemmEx, the loop, takes them.
inline bool cublas_grouped_takes(DType operands, DType out) {
  return operands == out && (operands == DType::BF16 || operands == DType::F32);
}

// CUTLASS's kernels (cutlass/grouped_gemm_sm90.h): bf16 operands, a bf16 result for the forward
// and the input gradient, an f32 one for the weight gradient.
inline bool cutlass_takes(DType operands, DType out, bool weight_grad) {
  return operands == DType::BF16 && out == (weight_grad ? DType::F32 : DType::BF16);
}

struct GroupedCall {
  GroupedGemmMode mode = GroupedGemmMode::Auto;
  DType operands = DType::F32, out = DType::F32;
  bool weight_grad = false;     // the TN form, dW += dy^T x
  bool cutlass_fits = false;    // CUTLASS built, an sm_90 GPU, widths and alignment fit
  bool independent = true;      // no two problems write the same output
  size_t problems = 0;          // non-empty GEMMs in the call
  bool cublas_refused = false;  // cuBLAS's grouped call refused these dtypes at run time before
};

struct GroupedRoute {
  GroupedPath path = GroupedPath::Loop;
  std::string refused;  // non-empty: the forced mode cannot run this call, and why
};

// The path of one call. Outputs that overlap always take the loop, which runs the problems in
// order like the CPU. A dtype pair that cuBLAS refused at run time takes the loop in Auto from
// then on; other pairs keep the grouped call.
inline GroupedRoute route_grouped(const GroupedCall& c) {
  const bool cublas_ok = cublas_grouped_takes(c.operands, c.out);
  switch (c.mode) {
    case GroupedGemmMode::Loop:
      return {GroupedPath::Loop, {}};
    case GroupedGemmMode::Grouped:
      if (!c.independent) return {GroupedPath::Loop, {}};
      if (!cublas_ok)
        return {GroupedPath::CublasGrouped,
                std::string("cublasGemmGroupedBatchedEx takes A, B and C of one type (16F, 16BF or "
                            "32F), not ") +
                    dtype_name(c.operands) + " operands with " + dtype_name(c.out) + " results"};
      return {GroupedPath::CublasGrouped, {}};
    case GroupedGemmMode::Auto:
    case GroupedGemmMode::Cutlass:
      break;
  }
  if (c.cutlass_fits && c.independent && cutlass_takes(c.operands, c.out, c.weight_grad))
    return {GroupedPath::Cutlass, {}};
  if (c.independent && c.problems > kLoopMaxProblems && cublas_ok && !c.cublas_refused)
    return {GroupedPath::CublasGrouped, {}};
  return {GroupedPath::Loop, {}};
}

}  // namespace moe::ops::gpu
