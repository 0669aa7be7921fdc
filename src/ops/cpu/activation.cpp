// CPU expert and dense-MLP activations: GELU (exact erf form and tanh form) and SwiGLU, forward
// and backward. The float kernels use vectorizable fast_exp and are compiled per instruction set
// (MOE_CPU_CLONES); the double ones use libm, for the f64 gradient checks.
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // the normal density at 0

// The normal tail Q(x) = P(Z > |x|) = 0.5 erfc(|x| / sqrt 2) and the density phi(x), which the
// exact GELU x Phi(x) and its derivative Phi(x) + x phi(x) need. Float: Abramowitz & Stegun
// 7.1.26 (erfc(z) = t (a1 + t (a2 + ... + t a5)) exp(-z^2), t = 1 / (1 + p z), |error| <= 1.5e-7
// in erf), branch-free so that the loop vectorizes, with one exp shared by the tail and the
// density. The GELU and its derivative stay within 4.2e-7 and 3e-7 of libm's double over
// [-10, 10] (tests/unit/ops_grad_test.cpp): the size of float rounding of values near 2.
inline void normal_tail_density(float x, float& tail, float& density) {
  const float z = std::fabs(x) * float(kInvSqrt2);
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float e = fast_exp(-0.5f * x * x);
  float q = 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  tail = 0.5f * q * t * e;
  density = float(kInvSqrt2Pi) * e;
}
inline void normal_tail_density(double x, double& tail, double& density) {
  tail = 0.5 * std::erfc(std::fabs(x) * kInvSqrt2);
  density = kInvSqrt2Pi * std::exp(-0.5 * x * x);
}

template <class T>
inline void gelu_erf_fwd(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T tail, density;
    normal_tail_density(x[i], tail, density);
    y[i] = x[i] * (x[i] < T(0) ? tail : T(1) - tail);
  }
}

template <class T>
inline void gelu_erf_bwd(const T* x, const T* g, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T tail, density;
    normal_tail_density(x[i], tail, density);
    out[i] = g[i] * ((x[i] < T(0) ? tail : T(1) - tail) + x[i] * density);
  }
}

template <class T>
inline void gelu_tanh_fwd(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T u = T(kGeluC) * (x[i] + T(kGeluA) * x[i] * x[i] * x[i]);
    y[i] = T(0.5) * x[i] * (T(1) + fast_tanh(u));
  }
}

template <class T>
inline void gelu_tanh_bwd(const T* x, const T* g, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T x2 = x[i] * x[i];
    T th = fast_tanh(T(kGeluC) * (x[i] + T(kGeluA) * x2 * x[i]));
    T sech2 = T(1) - th * th;
    T d = T(0.5) * (T(1) + th) + T(0.5) * x[i] * sech2 * T(kGeluC) * (T(1) + T(3 * kGeluA) * x2);
    out[i] = g[i] * d;
  }
}

template <class T>
inline void swiglu_fwd(const T* g, const T* u, T* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = g[i] * fast_sigmoid(g[i]) * u[i];
}

template <class T>
inline void swiglu_bwd(const T* g, const T* u, const T* da, T* dg, T* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T s = fast_sigmoid(g[i]);
    du[i] = da[i] * g[i] * s;
    dg[i] = da[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

MOE_CPU_CLONES void gelu_erf_fwd_f32(const float* x, float* y, int64_t n) { gelu_erf_fwd(x, y, n); }
MOE_CPU_CLONES void gelu_erf_bwd_f32(const float* x, const float* g, float* o, int64_t n) { gelu_erf_bwd(x, g, o, n); }
MOE_CPU_CLONES void gelu_tanh_fwd_f32(const float* x, float* y, int64_t n) { gelu_tanh_fwd(x, y, n); }
MOE_CPU_CLONES void gelu_tanh_bwd_f32(const float* x, const float* g, float* o, int64_t n) { gelu_tanh_bwd(x, g, o, n); }
MOE_CPU_CLONES void swiglu_fwd_f32(const float* g, const float* u, float* a, int64_t n) { swiglu_fwd(g, u, a, n); }
MOE_CPU_CLONES void swiglu_bwd_f32(const float* g, const float* u, const float* da, float* dg, float* du,
                                   int64_t n) {
  swiglu_bwd(g, u, da, dg, du, n);
}
void gelu_fwd_k(Gelu f, const double* x, double* y, int64_t n) {
  f == Gelu::Erf ? gelu_erf_fwd(x, y, n) : gelu_tanh_fwd(x, y, n);
}
void gelu_fwd_k(Gelu f, const float* x, float* y, int64_t n) {
  f == Gelu::Erf ? gelu_erf_fwd_f32(x, y, n) : gelu_tanh_fwd_f32(x, y, n);
}
void gelu_bwd_k(Gelu f, const double* x, const double* g, double* o, int64_t n) {
  f == Gelu::Erf ? gelu_erf_bwd(x, g, o, n) : gelu_tanh_bwd(x, g, o, n);
}
void gelu_bwd_k(Gelu f, const float* x, const float* g, float* o, int64_t n) {
  f == Gelu::Erf ? gelu_erf_bwd_f32(x, g, o, n) : gelu_tanh_bwd_f32(x, g, o, n);
}
void swiglu_fwd_k(const double* g, const double* u, double* a, int64_t n) { swiglu_fwd(g, u, a, n); }
void swiglu_fwd_k(const float* g, const float* u, float* a, int64_t n) { swiglu_fwd_f32(g, u, a, n); }
void swiglu_bwd_k(const double* g, const double* u, const double* da, double* dg, double* du, int64_t n) {
  swiglu_bwd(g, u, da, dg, du, n);
}
void swiglu_bwd_k(const float* g, const float* u, const float* da, float* dg, float* du, int64_t n) {
  swiglu_bwd_f32(g, u, da, dg, du, n);
}

}  // namespace

void CpuBackend::gelu_forward(const Tensor& h, Tensor& a, Gelu form) {
  if (any_bf16({&h, &a})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gelu_forward(s.in(h), s.out(a), form);
  }
  check_same(h, a, "gelu a");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gelu_fwd_k(form, h.data<T>(), a.data<T>(), h.numel());
  });
}

void CpuBackend::gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) {
  if (any_bf16({&h, &da, &dh})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gelu_backward(s.in(h), s.in(da), s.out(dh), form);
  }
  check_same(h, da, "gelu da");
  check_same(h, dh, "gelu dh");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gelu_bwd_k(form, h.data<T>(), da.data<T>(), dh.data<T>(), h.numel());
  });
}

void CpuBackend::swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) {
  if (any_bf16({&g, &u, &a})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return swiglu_forward(s.in(g), s.in(u), s.out(a));
  }
  check_same(g, u, "swiglu u");
  check_same(g, a, "swiglu a");
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    swiglu_fwd_k(g.data<T>(), u.data<T>(), a.data<T>(), g.numel());
  });
}

void CpuBackend::swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                                 Tensor& du) {
  if (any_bf16({&g, &u, &da, &dg, &du})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return swiglu_backward(s.in(g), s.in(u), s.in(da), s.out(dg), s.out(du));
  }
  check_same(g, da, "swiglu da");
  check_same(g, dg, "swiglu dg");
  check_same(g, du, "swiglu du");
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    swiglu_bwd_k(g.data<T>(), u.data<T>(), da.data<T>(), dg.data<T>(), du.data<T>(), g.numel());
  });
}

}  // namespace moe::ops::cpu
