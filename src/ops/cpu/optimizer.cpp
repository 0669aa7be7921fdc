// CPU optimizer updates on master weights: AdamW (decoupled weight decay) and SGD with momentum.
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {

template <class T>
inline void adamw_k(T* p, const T* g, T* m, T* v, int64_t n, T b1, T b2, T ib1, T ib2, T e, T l,
                    T d) {
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (T(1) - b1) * g[i];
    v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
    T mh = m[i] * ib1, vh = v[i] * ib2;
    p[i] -= l * (mh / (std::sqrt(vh) + e) + d * p[i]);
  }
}
MOE_CPU_CLONES void adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, float b1,
                              float b2, float ib1, float ib2, float e, float l, float d) {
  adamw_k(p, g, m, v, n, b1, b2, ib1, ib2, e, l, d);
}
void adamw_any(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2,
               float ib1, float ib2, float e, float l, float d) {
  adamw_f32(p, g, m, v, n, b1, b2, ib1, ib2, e, l, d);
}
void adamw_any(double* p, const double* g, double* m, double* v, int64_t n, double b1, double b2,
               double ib1, double ib2, double e, double l, double d) {
  adamw_k(p, g, m, v, n, b1, b2, ib1, ib2, e, l, d);
}

}  // namespace

void CpuBackend::adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr,
                            double beta1, double beta2, double eps, double wd, int64_t step) {
  if (any_bf16({&p, &g, &m, &v})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return adamw_step(s.out(p), s.in(g), s.out(m), s.out(v), lr, beta1, beta2, eps, wd, step);
  }
  check_same(p, g, "adamw grad");
  check_same(p, m, "adamw m");
  check_same(p, v, "adamw v");
  MOE_CHECK(step >= 1, "adamw step counts from 1");
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adamw_any(p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), p.numel(), T(beta1), T(beta2),
              T(1 / bc1), T(1 / bc2), T(eps), T(lr), T(wd));
  });
}

void CpuBackend::sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                          double wd) {
  if (any_bf16({&p, &g, &buf})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return sgd_step(s.out(p), s.in(g), s.out(buf), lr, momentum, wd);
  }
  check_same(p, g, "sgd grad");
  check_same(p, buf, "sgd momentum buffer");
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T *pp = p.data<T>(), *pb = buf.data<T>();
    const T* pg = g.data<T>();
    const T mu = T(momentum), l = T(lr), d = T(wd);
    const int64_t n = p.numel();
    for (int64_t i = 0; i < n; ++i) {
      pb[i] = mu * pb[i] + pg[i];
      pp[i] -= l * (pb[i] + d * pp[i]);
    }
  });
}

}  // namespace moe::ops::cpu
