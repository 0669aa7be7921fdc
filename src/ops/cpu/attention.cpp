// CPU causal multi-head attention: per (batch, head), BLAS products on strided views of the
// fused qkv buffer, in row blocks of kBlock queries so that only keys at or before each block
// are touched (the upper triangle is never computed: ~40% fewer FLOPs at T = 128). The softmax
// probabilities are kept (zeros above the diagonal) for the backward pass.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {
constexpr int kBlock = 32;
}

void CpuBackend::attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T,
                                   int H, double scale) {
  if (any_bf16({&qkv, &out, &probs})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return attention_forward(s.in(qkv), s.out(out), s.out(probs), B, T, H, scale);
  }
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
        T_* o = out.data<T_>() + int64_t(b) * T * N + h * D;
        for (int r0 = 0; r0 < T; r0 += kBlock) {
          const int rows = std::min(kBlock, T - r0), keys = r0 + rows;
          T_* pb = p + int64_t(r0) * T;
          // S[r0:r0+rows, 0:keys] = scale * Q_rows K_keys^T
          blas_gemm(false, true, rows, keys, D, T_(scale), q + int64_t(r0) * ld, ld, k, ld, T_(0), pb, T);
          for (int i = 0; i < rows; ++i) {  // causal: query r0 + i sees keys 0..r0 + i
            T_* row = pb + int64_t(i) * T;
            softmax_row_any(row, r0 + i + 1);
            std::fill(row + r0 + i + 1, row + T, T_(0));
          }
          blas_gemm(false, false, rows, D, keys, T_(1), pb, T, v, ld, T_(0), o + int64_t(r0) * N, N);
        }
      }
    }
  });
}

// Per row block: dP = dO V^T; dS = P * (dP - rowsum(P * dP)) * scale; dQ = dS K;
// dK += dS^T Q; dV += P^T dO (keys up to the block's last query only).
void CpuBackend::attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout,
                                    Tensor& dqkv, int B, int T, int H, double scale) {
  if (any_bf16({&qkv, &probs, &dout, &dqkv})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return attention_backward(s.in(qkv), s.in(probs), s.in(dout), s.out(dqkv), B, T, H, scale);
  }
  const int64_t N = qkv.dim(1) / 3, D = N / H, ld = 3 * N;
  check_same(qkv, dqkv, "attention dqkv");
  check_shape(dout, {int64_t(B) * T, N}, "attention dout");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using T_ = decltype(tag);
    std::vector<T_> ds(size_t(kBlock) * T);
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
        for (int t = 0; t < T; ++t) {  // dK and dV accumulate over row blocks
          std::fill(dk + int64_t(t) * ld, dk + int64_t(t) * ld + D, T_(0));
          std::fill(dv + int64_t(t) * ld, dv + int64_t(t) * ld + D, T_(0));
        }
        for (int r0 = 0; r0 < T; r0 += kBlock) {
          const int rows = std::min(kBlock, T - r0), keys = r0 + rows;
          const T_* pb = p + int64_t(r0) * T;
          const T_* dOb = dO + int64_t(r0) * N;
          blas_gemm(false, true, rows, keys, D, T_(1), dOb, N, v, ld, T_(0), ds.data(), T);
          for (int i = 0; i < rows; ++i) {
            const int len = r0 + i + 1;
            T_* dr = ds.data() + int64_t(i) * T;
            softmax_backward_row_any(pb + int64_t(i) * T, dr, len, T_(scale));
            std::fill(dr + len, dr + keys, T_(0));
          }
          blas_gemm(false, false, rows, D, keys, T_(1), ds.data(), T, k, ld, T_(0), dq + int64_t(r0) * ld, ld);
          blas_gemm(true, false, keys, D, rows, T_(1), ds.data(), T, q + int64_t(r0) * ld, ld, T_(1), dk, ld);
          blas_gemm(true, false, keys, D, rows, T_(1), pb, T, dOb, N, T_(1), dv, ld);
        }
      }
    }
  });
}

}  // namespace moe::ops::cpu
