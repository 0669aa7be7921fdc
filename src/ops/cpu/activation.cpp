// CPU expert activations: GELU (tanh form) and SwiGLU, forward and backward.
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {
namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;
}  // namespace

void CpuBackend::gelu_forward(const Tensor& h, Tensor& a) {
  check_same(h, a, "gelu a");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = h.data<T>();
    T* y = a.data<T>();
    for (int64_t i = 0; i < h.numel(); ++i) {
      T u = T(kGeluC) * (x[i] + T(kGeluA) * x[i] * x[i] * x[i]);
      y[i] = T(0.5) * x[i] * (T(1) + std::tanh(u));
    }
  });
}

void CpuBackend::gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh) {
  check_same(h, da, "gelu da");
  check_same(h, dh, "gelu dh");
  dispatch_float(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *x = h.data<T>(), *g = da.data<T>();
    T* out = dh.data<T>();
    for (int64_t i = 0; i < h.numel(); ++i) {
      T x2 = x[i] * x[i];
      T th = std::tanh(T(kGeluC) * (x[i] + T(kGeluA) * x2 * x[i]));
      T sech2 = T(1) - th * th;
      T d = T(0.5) * (T(1) + th) + T(0.5) * x[i] * sech2 * T(kGeluC) * (T(1) + T(3 * kGeluA) * x2);
      out[i] = g[i] * d;
    }
  });
}

void CpuBackend::swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) {
  check_same(g, u, "swiglu u");
  check_same(g, a, "swiglu a");
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *pg = g.data<T>(), *pu = u.data<T>();
    T* pa = a.data<T>();
    for (int64_t i = 0; i < g.numel(); ++i) {
      T s = T(1) / (T(1) + std::exp(-pg[i]));
      pa[i] = pg[i] * s * pu[i];
    }
  });
}

void CpuBackend::swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                                 Tensor& du) {
  check_same(g, da, "swiglu da");
  check_same(g, dg, "swiglu dg");
  check_same(g, du, "swiglu du");
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *pg = g.data<T>(), *pu = u.data<T>(), *pda = da.data<T>();
    T *pdg = dg.data<T>(), *pdu = du.data<T>();
    for (int64_t i = 0; i < g.numel(); ++i) {
      T s = T(1) / (T(1) + std::exp(-pg[i]));
      T silu = pg[i] * s;
      pdu[i] = pda[i] * silu;
      pdg[i] = pda[i] * pu[i] * s * (T(1) + pg[i] * (T(1) - s));
    }
  });
}

}  // namespace moe::ops::cpu
