// Helpers shared by the CPU ops: dtype dispatch, shape checks and typed BLAS wrappers.
#pragma once
#include <cblas.h>

#include "src/core/tensor.h"

namespace moe::ops::cpu {

// Calls f(T{}) with T = float or double according to `t`.
template <class F>
void dispatch_float(DType t, F&& f) {
  if (t == DType::F32) {
    f(float{});
  } else if (t == DType::F64) {
    f(double{});
  } else {
    MOE_CHECK(false, "CPU backend supports f32 and f64, got ", dtype_name(t));
  }
}

inline void check_cpu(const Tensor& t, const char* what) {
  MOE_CHECK(t.defined() && t.device() == Device::CPU, what, " must be a CPU tensor");
}

inline void check_shape(const Tensor& t, const Shape& s, const char* what) {
  MOE_CHECK(t.shape() == s, what, " has shape ", shape_str(t.shape()), ", expected ", shape_str(s));
}

inline void check_same(const Tensor& a, const Tensor& b, const char* what) {
  MOE_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), what, ": ", shape_str(a.shape()),
            " ", dtype_name(a.dtype()), " vs ", shape_str(b.shape()), " ", dtype_name(b.dtype()));
}

// Row-major GEMM with leading dimensions: C (m x n) = alpha op(A) op(B) + beta C.
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                      const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                      const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace moe::ops::cpu
