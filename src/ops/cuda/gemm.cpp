// The dense GEMM op and the row-major cuBLAS wrapper that every CUDA GEMM goes through.
#include "src/ops/cuda/cuda_backend.h"
#include "src/ops/cuda/cuda_util.h"
#include "src/ops/cuda/gemm_rm.h"

namespace moe::ops::gpu {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    default:
      break;
  }
  MOE_CHECK(false, "no cuBLAS type for ", dtype_name(t));
  return CUDA_R_32F;
}

void gemm_rm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
             const Mat& a, const Mat& b, float beta, const Mat& c, int64_t batch) {
  // Column-major view: C^T (n x m) = op(B)^T (n x k) op(A)^T (k x m). A row-major operand
  // stored untransposed is its own transpose in column-major, so the flags carry over as is.
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int M = as_int(n, "gemm n"), N = as_int(m, "gemm m"), K = as_int(k, "gemm k");
  const int lda = as_int(b.ld, "gemm ldb"), ldb = as_int(a.ld, "gemm lda"),
            ldc = as_int(c.ld, "gemm ldc");
  if (batch == 1) {
    MOE_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, M, N, K, &alpha, b.p, b.type, lda, a.p, a.type,
                                  ldb, &beta, const_cast<void*>(c.p), c.type, ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    MOE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        h, op_b, op_a, M, N, K, &alpha, b.p, b.type, lda, b.stride, a.p, a.type, ldb, a.stride,
        &beta, const_cast<void*>(c.p), c.type, ldc, c.stride, as_int(batch, "gemm batch"),
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void CudaBackend::gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                       double alpha, double beta) {
  check_dev(a, "gemm a");
  check_dev(b, "gemm b");
  check_dev(c, "gemm c");
  MOE_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, "gemm needs 2-D tensors");
  // bf16 A and B may write an f32 C (fp32 accumulation either way): logits, f32 gradients.
  MOE_CHECK(a.dtype() == b.dtype() && (b.dtype() == c.dtype() || c.dtype() == DType::F32),
            "gemm dtypes differ");
  check_float(a, "gemm");
  const int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
  MOE_CHECK(k == kb && c.dim(0) == m && c.dim(1) == n, "gemm shapes ", shape_str(a.shape()),
            trans_a ? "^T" : "", " x ", shape_str(b.shape()), trans_b ? "^T" : "", " -> ",
            shape_str(c.shape()));
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta C (exact zeros for beta = 0, as the CPU op)
    if (beta == 0)
      fill(c, 0.0);
    else
      scale(c, beta);
    return;
  }
  const cudaDataType_t t = cuda_type(a.dtype());
  gemm_rm(cublas_, trans_a, trans_b, m, n, k, float(alpha), Mat{a.raw(), t, a.dim(1)},
          Mat{b.raw(), t, b.dim(1)}, float(beta), Mat{c.raw(), cuda_type(c.dtype()), n});
}

}  // namespace moe::ops::gpu
