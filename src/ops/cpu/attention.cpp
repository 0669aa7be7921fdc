// CPU causal multi-head attention: per (batch, head) BLAS products on strided views of the
// fused qkv buffer, with the softmax probabilities kept for the backward pass.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {

void CpuBackend::attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T,
                                   int H, double scale) {
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(0) == int64_t(B) * T && qkv.dim(1) % 3 == 0,
            "attention qkv shape ", shape_str(qkv.shape()));
  const int64_t N = qkv.dim(1) / 3, D = N / H, ld = 3 * N;
  MOE_CHECK(N % H == 0, "width ", N, " not divisible by ", H, " heads");
  check_shape(out, {int64_t(B) * T, N}, "attention out");
  check_shape(probs, {B, H, T, T}, "attention probs");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using T_ = decltype(tag);
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < H; ++h) {
        const T_* q = qkv.data<T_>() + int64_t(b) * T * ld + h * D;
        const T_* k = q + N;
        const T_* v = q + 2 * N;
        T_* p = probs.data<T_>() + (int64_t(b) * H + h) * T * T;
        // S = scale * Q K^T (full square; the causal half is masked below)
        blas_gemm(false, true, T, T, D, T_(scale), q, ld, k, ld, T_(0), p, T);
        for (int i = 0; i < T; ++i) {
          T_* row = p + int64_t(i) * T;
          T_ mx = row[0];
          for (int j = 1; j <= i; ++j) mx = std::max(mx, row[j]);
          T_ sum = 0;
          for (int j = 0; j <= i; ++j) {
            row[j] = std::exp(row[j] - mx);
            sum += row[j];
          }
          T_ inv = T_(1) / sum;
          for (int j = 0; j <= i; ++j) row[j] *= inv;
          for (int j = i + 1; j < T; ++j) row[j] = 0;
        }
        T_* o = out.data<T_>() + int64_t(b) * T * N + h * D;
        blas_gemm(false, false, T, D, T, T_(1), p, T, v, ld, T_(0), o, N);
      }
    }
  });
}

// dP = dO V^T; dS = P * (dP - rowsum(P * dP)) * scale; dQ = dS K; dK = dS^T Q; dV = P^T dO.
void CpuBackend::attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout,
                                    Tensor& dqkv, int B, int T, int H, double scale) {
  const int64_t N = qkv.dim(1) / 3, D = N / H, ld = 3 * N;
  check_same(qkv, dqkv, "attention dqkv");
  check_shape(dout, {int64_t(B) * T, N}, "attention dout");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using T_ = decltype(tag);
    std::vector<T_> ds(size_t(T) * T);
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < H; ++h) {
        int64_t off = int64_t(b) * T * ld + h * D;
        const T_* q = qkv.data<T_>() + off;
        const T_* k = q + N;
        const T_* v = q + 2 * N;
        T_* dq = dqkv.data<T_>() + off;
        T_* dk = dq + N;
        T_* dv = dq + 2 * N;
        const T_* p = probs.data<T_>() + (int64_t(b) * H + h) * T * T;
        const T_* dO = dout.data<T_>() + int64_t(b) * T * N + h * D;
        blas_gemm(false, true, T, T, D, T_(1), dO, N, v, ld, T_(0), ds.data(), T);
        for (int i = 0; i < T; ++i) {
          const T_* pr = p + int64_t(i) * T;
          T_* dr = ds.data() + int64_t(i) * T;
          T_ dot = 0;
          for (int j = 0; j <= i; ++j) dot += pr[j] * dr[j];
          for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot) * T_(scale);
          for (int j = i + 1; j < T; ++j) dr[j] = 0;
        }
        blas_gemm(false, false, T, D, T, T_(1), ds.data(), T, k, ld, T_(0), dq, ld);
        blas_gemm(true, false, T, D, T, T_(1), ds.data(), T, q, ld, T_(0), dk, ld);
        blas_gemm(true, false, T, D, T, T_(1), p, T, dO, N, T_(0), dv, ld);
      }
    }
  });
}

}  // namespace moe::ops::cpu
