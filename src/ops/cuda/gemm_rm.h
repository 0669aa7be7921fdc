// Row-major GEMMs on cuBLAS (column-major) for the CUDA ops: C = alpha op(A) op(B) + beta C is
// issued as C^T = alpha op(B)^T op(A)^T, i.e. with the operands swapped and the leading
// dimensions unchanged. fp32 compute (CUBLAS_COMPUTE_32F: no TF32) for f32 and bf16 storage.
#pragma once
#include <cublas_v2.h>

#include <cstdint>

#include "src/core/tensor.h"

namespace moe::ops::gpu {

// One row-major matrix operand: data, element type and leading dimension (row stride).
struct Mat {
  const void* p;
  cudaDataType_t type;
  int64_t ld;
  int64_t stride = 0;  // between the matrices of a strided batch
};

cudaDataType_t cuda_type(DType t);

// C (m x n) = alpha op(A) op(B) + beta C, row-major, `batch` times with the operands' strides.
void gemm_rm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
             const Mat& a, const Mat& b, float beta, const Mat& c, int64_t batch = 1);

}  // namespace moe::ops::gpu
