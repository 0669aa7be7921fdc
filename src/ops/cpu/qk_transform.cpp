// CPU QK-norm (RMSNorm without a gain, per head) and RoPE (half-split rotation, per head) on the
// q and k thirds of qkv (B*T, 3N): the MSSP paper's attention applies the norm, then the
// rotation, to q and k before the logits. Angles are computed in double and rounded once, so
// that the CUDA kernels (which do the same) agree to rounding.
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {
namespace {

void check_qkv(const Tensor& qkv, int H, const char* what) {
  check_cpu(qkv, what);
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(1) % 3 == 0, what, " must be (B*T, 3N), got ",
            shape_str(qkv.shape()));
  MOE_CHECK(H >= 1 && (qkv.dim(1) / 3) % H == 0, what, ": width ", qkv.dim(1) / 3,
            " not divisible by ", H, " heads");
}

// rstd over each of the 2H heads of q and k; out = x * rstd there, v copied.
template <class T>
void qk_norm_fwd(const T* x, T* y, T* rstd, int64_t n, int64_t N, int H, T eps) {
  const int64_t D = N / H;
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * 3 * N;
    T* yr = y + r * 3 * N;
    for (int h = 0; h < 2 * H; ++h) {
      const T* xs = xr + h * D;
      T ss = 0;
      for (int64_t d = 0; d < D; ++d) ss += xs[d] * xs[d];
      const T rs = T(1) / std::sqrt(ss / T(D) + eps);
      rstd[r * 2 * H + h] = rs;
      for (int64_t d = 0; d < D; ++d) yr[h * D + d] = xs[d] * rs;
    }
    for (int64_t j = 2 * N; j < 3 * N; ++j) yr[j] = xr[j];
  }
}

// dx = rstd * dy - x * rstd^3 * mean(x dy) per head (the dot taken before dx is written, so dx
// may alias dy); v copied.
template <class T>
void qk_norm_bwd(const T* x, const T* rstd, const T* dy, T* dx, int64_t n, int64_t N, int H) {
  const int64_t D = N / H;
  for (int64_t r = 0; r < n; ++r) {
    for (int h = 0; h < 2 * H; ++h) {
      const int64_t o = r * 3 * N + h * D;
      const T rs = rstd[r * 2 * H + h];
      T dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += x[o + d] * dy[o + d];
      const T c = rs * rs * rs * dot / T(D);
      for (int64_t d = 0; d < D; ++d) dx[o + d] = rs * dy[o + d] - c * x[o + d];
    }
    for (int64_t j = 2 * N; j < 3 * N; ++j) dx[r * 3 * N + j] = dy[r * 3 * N + j];
  }
}

// Rotates the pairs (d, d + D/2) of every q and k head by +angle (sign 1) or -angle (sign -1).
template <class T>
void rope(T* x, int64_t n, int64_t N, int T_, int H, double base, double sign) {
  const int64_t D = N / H, half = D / 2;
  std::vector<T> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int64_t r = 0; r < n; ++r) {
    const double pos = double(r % T_);
    for (int64_t d = 0; d < half; ++d) {
      const double a = pos * std::pow(base, -double(2 * d) / double(D));
      c[size_t(d)] = T(std::cos(a));
      s[size_t(d)] = T(sign * std::sin(a));
    }
    for (int h = 0; h < 2 * H; ++h) {
      T* v = x + r * 3 * N + h * D;
      for (int64_t d = 0; d < half; ++d) {
        const T a = v[d], b = v[d + half];
        v[d] = a * c[size_t(d)] - b * s[size_t(d)];
        v[d + half] = b * c[size_t(d)] + a * s[size_t(d)];
      }
    }
  }
}

}  // namespace

void CpuBackend::qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) {
  if (any_bf16({&qkv, &out, &rstd})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return qk_norm_forward(s.in(qkv), s.out(out), s.out(rstd), H, eps);
  }
  check_qkv(qkv, H, "qk_norm qkv");
  const int64_t n = qkv.dim(0), N = qkv.dim(1) / 3;
  check_same(qkv, out, "qk_norm out");
  check_shape(rstd, {n, 2 * int64_t(H)}, "qk_norm rstd");
  MOE_CHECK(rstd.dtype() == qkv.dtype(), "qk_norm rstd dtype differs from qkv");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    qk_norm_fwd(qkv.data<T>(), out.data<T>(), rstd.data<T>(), n, N, H, T(eps));
  });
}

void CpuBackend::qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout,
                                  Tensor& dqkv, int H) {
  if (any_bf16({&qkv, &rstd, &dout, &dqkv})) {
    F32Scope s;
    if (dout.raw() == dqkv.raw()) {  // in place: one widened copy serves as both
      Tensor& w = s.out(dqkv);
      return qk_norm_backward(s.in(qkv), s.in(rstd), w, w, H);
    }
    return qk_norm_backward(s.in(qkv), s.in(rstd), s.in(dout), s.out(dqkv), H);
  }
  check_qkv(qkv, H, "qk_norm qkv");
  const int64_t n = qkv.dim(0), N = qkv.dim(1) / 3;
  check_same(qkv, dout, "qk_norm dout");
  check_same(qkv, dqkv, "qk_norm dqkv");
  check_shape(rstd, {n, 2 * int64_t(H)}, "qk_norm rstd");
  dispatch_float(qkv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    qk_norm_bwd(qkv.data<T>(), rstd.data<T>(), dout.data<T>(), dqkv.data<T>(), n, N, H);
  });
}

namespace {
// RoPE in place by +angle (sign 1, the forward) or -angle (sign -1, the backward).
void rope_in_place(Tensor& x, int T, int H, double base, double sign) {
  if (any_bf16({&x})) {
    F32Scope s;
    return rope_in_place(s.out(x), T, H, base, sign);
  }
  check_qkv(x, H, "rope qkv");
  const int64_t n = x.dim(0), N = x.dim(1) / 3;
  MOE_CHECK((N / H) % 2 == 0, "rope: head size ", N / H, " is odd");
  dispatch_float(x.dtype(), [&](auto tag) {
    using V = decltype(tag);
    rope(x.data<V>(), n, N, T, H, base, sign);
  });
}
}  // namespace

void CpuBackend::rope_forward(Tensor& qkv, int T, int H, double base) {
  rope_in_place(qkv, T, H, base, 1.0);
}

void CpuBackend::rope_backward(Tensor& dqkv, int T, int H, double base) {
  rope_in_place(dqkv, T, H, base, -1.0);
}

}  // namespace moe::ops::cpu
