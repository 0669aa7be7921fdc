// CPU expert activations: GELU (tanh form) and SwiGLU, forward and backward. The float kernels
// use the vectorizable fast_exp and are compiled per instruction set (MOE_CPU_CLONES).
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;

template <class T>
inline void gelu_fwd(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T u = T(kGeluC) * (x[i] + T(kGeluA) * x[i] * x[i] * x[i]);
    y[i] = T(0.5) * x[i] * (T(1) + fast_tanh(u));
  }
}

template <class T>
inline void gelu_bwd(const T* x, const T* g, T* out, int64_t n) {
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

MOE_CPU_CLONES void gelu_fwd_f32(const float* x, float* y, int64_t n) { gelu_fwd(x, y, n); }
MOE_CPU_CLONES void gelu_bwd_f32(const float* x, const float* g, float* o, int64_t n) { gelu_bwd(x, g, o, n); }
MOE_CPU_CLONES void swiglu_fwd_f32(const float* g, const float* u, float* a, int64_t n) { swiglu_fwd(g, u, a, n); }
MOE_CPU_CLONES void swiglu_bwd_f32(const float* g, const float* u, const float* da, float* dg, float* du,
                                   int64_t n) {
  swiglu_bwd(g, u, da, dg, du, n);
}
void gelu_fwd_k(const double* x, double* y, int64_t n) { gelu_fwd(x, y, n); }
void gelu_fwd_k(const float* x, float* y, int64_t n) { gelu_fwd_f32(x, y, n); }
void gelu_bwd_k(const double* x, const double* g, double* o, int64_t n) { gelu_bwd(x, g, o, n); }
void gelu_bwd_k(const float* x, const float* g, float* o, int64_t n) { gelu_bwd_f32(x, g, o, n); }
void swiglu_fwd_k(const double* g, const double* u, double* a, int64_t n) { swiglu_fwd(g, u, a, n); }
void swiglu_fwd_k(const float* g, const float* u, float* a, int64_t n) { swiglu_fwd_f32(g, u, a, n); }
void swiglu_bwd_k(const double* g, const double* u, const double* da, double* dg, double* du, int64_t n) {
  swiglu_bwd(g, u, da, dg, du, n);
}
void swiglu_bwd_k(const float* g, const float* u, const float* da, float* dg, float* du, int64_t n) {
  swiglu_bwd_f32(g, u, da, dg, du, n);
}

}  // namespace

void CpuBackend::gelu_forward(const Tensor& h, Tensor& a) {
  if (any_bf16({&h, &a})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gelu_forward(s.in(h), s.out(a));
  }
  check_same(h, a, "gelu a");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gelu_fwd_k(h.data<T>(), a.data<T>(), h.numel());
  });
}

void CpuBackend::gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh) {
  if (any_bf16({&h, &da, &dh})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gelu_backward(s.in(h), s.in(da), s.out(dh));
  }
  check_same(h, da, "gelu da");
  check_same(h, dh, "gelu dh");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gelu_bwd_k(h.data<T>(), da.data<T>(), dh.data<T>(), h.numel());
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
