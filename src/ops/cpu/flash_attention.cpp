// CPU reference of the fused causal attention (the CUDA flash_attention.cu computes the same):
// per (batch, head, query) a pass over the keys at or before it with one row of scores, the
// row's log-sum-exp kept instead of the T x T probabilities; the backward recomputes each
// probability from it. Plain loops, accumulated in the element type (f32, or f64 in checks).
#include <cmath>
#include <vector>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {
namespace {

struct Layout {
  int64_t N, D, ld;
};

Layout check_flash(const Tensor& qkv, const Tensor& lse, int B, int T, int H) {
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(0) == int64_t(B) * T && qkv.dim(1) % 3 == 0,
            "flash attention qkv shape ", shape_str(qkv.shape()));
  const int64_t N = qkv.dim(1) / 3;
  MOE_CHECK(N % H == 0, "width ", N, " not divisible by ", H, " heads");
  check_shape(lse, {B, H, T}, "flash attention lse");
  MOE_CHECK(lse.dtype() == DType::F32 || lse.dtype() == qkv.dtype(), "flash attention lse is f32");
  return {N, N / H, 3 * N};
}

}  // namespace

void CpuBackend::flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T,
                                         int H, double scale) {
  if (any_bf16({&qkv, &out})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return flash_attention_forward(s.in(qkv), s.out(out), lse, B, T, H, scale);
  }
  const Layout L = check_flash(qkv, lse, B, T, H);
  check_shape(out, {int64_t(B) * T, L.N}, "flash attention out");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using F = decltype(tag);
    std::vector<F> s(static_cast<size_t>(T));
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < T; ++i) {
          const F* q = qkv.data<F>() + (int64_t(b) * T + i) * L.ld + h * L.D;
          F m = -INFINITY;
          for (int j = 0; j <= i; ++j) {  // causal: keys 0..i
            const F* k = qkv.data<F>() + (int64_t(b) * T + j) * L.ld + L.N + h * L.D;
            F acc = 0;
            for (int64_t d = 0; d < L.D; ++d) acc += q[d] * k[d];
            s[size_t(j)] = F(scale) * acc;
            m = std::max(m, s[size_t(j)]);
          }
          F l = 0;
          for (int j = 0; j <= i; ++j) l += std::exp(s[size_t(j)] - m);
          F* o = out.data<F>() + (int64_t(b) * T + i) * L.N + h * L.D;
          for (int64_t d = 0; d < L.D; ++d) o[d] = 0;
          for (int j = 0; j <= i; ++j) {
            const F p = std::exp(s[size_t(j)] - m) / l;
            const F* v = qkv.data<F>() + (int64_t(b) * T + j) * L.ld + 2 * L.N + h * L.D;
            for (int64_t d = 0; d < L.D; ++d) o[d] += p * v[d];
          }
          const double lv = double(m) + std::log(double(l));
          const int64_t at = (int64_t(b) * H + h) * T + i;
          if (lse.dtype() == DType::F64) lse.data<double>()[at] = lv;
          else lse.data<float>()[at] = float(lv);
        }
  });
}

// dV_j += p_ij dO_i; dp_ij = dO_i . V_j; dS_ij = p_ij (dp_ij - dO_i . O_i);
// dQ_i += scale dS_ij K_j; dK_j += scale dS_ij Q_i, with p_ij = exp(scale Q_i . K_j - lse_i).
void CpuBackend::flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                          const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                          double scale) {
  if (any_bf16({&qkv, &out, &dout, &dqkv})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return flash_attention_backward(s.in(qkv), s.in(out), lse, s.in(dout), s.out(dqkv), B, T, H,
                                    scale);
  }
  const Layout L = check_flash(qkv, lse, B, T, H);
  check_same(qkv, dqkv, "flash attention dqkv");
  check_shape(out, {int64_t(B) * T, L.N}, "flash attention out");
  check_shape(dout, {int64_t(B) * T, L.N}, "flash attention dout");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using F = decltype(tag);
    F* dq_all = dqkv.data<F>();
    for (int64_t e = 0; e < dqkv.numel(); ++e) dq_all[e] = 0;
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < T; ++i) {
          const int64_t ri = int64_t(b) * T + i;
          const F* q = qkv.data<F>() + ri * L.ld + h * L.D;
          const F* o = out.data<F>() + ri * L.N + h * L.D;
          const F* g = dout.data<F>() + ri * L.N + h * L.D;
          const int64_t at = (int64_t(b) * H + h) * T + i;
          const F li = lse.dtype() == DType::F64 ? F(lse.data<double>()[at]) : F(lse.data<float>()[at]);
          F delta = 0;
          for (int64_t d = 0; d < L.D; ++d) delta += g[d] * o[d];
          F* dq = dq_all + ri * L.ld + h * L.D;
          for (int j = 0; j <= i; ++j) {
            const int64_t rj = int64_t(b) * T + j;
            const F* k = qkv.data<F>() + rj * L.ld + L.N + h * L.D;
            const F* v = k + L.N;
            F* dk = dq_all + rj * L.ld + L.N + h * L.D;
            F* dv = dk + L.N;
            F sc = 0, dp = 0;
            for (int64_t d = 0; d < L.D; ++d) {
              sc += q[d] * k[d];
              dp += g[d] * v[d];
            }
            const F p = std::exp(F(scale) * sc - li);
            const F ds = p * (dp - delta) * F(scale);
            for (int64_t d = 0; d < L.D; ++d) {
              dv[d] += p * g[d];
              dq[d] += ds * k[d];
              dk[d] += ds * q[d];
            }
          }
        }
  });
}

}  // namespace moe::ops::cpu
