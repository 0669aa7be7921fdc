// CPU optimizer updates on master weights: AdamW (decoupled weight decay) and SGD with momentum.
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {

void CpuBackend::adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr,
                            double beta1, double beta2, double eps, double wd, int64_t step) {
  check_same(p, g, "adamw grad");
  check_same(p, m, "adamw m");
  check_same(p, v, "adamw v");
  MOE_CHECK(step >= 1, "adamw step counts from 1");
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T *pp = p.data<T>(), *pm = m.data<T>(), *pv = v.data<T>();
    const T* pg = g.data<T>();
    const T b1 = T(beta1), b2 = T(beta2), ib1 = T(1 / bc1), ib2 = T(1 / bc2), e = T(eps),
            l = T(lr), d = T(wd);
    for (int64_t i = 0; i < p.numel(); ++i) {
      pm[i] = b1 * pm[i] + (T(1) - b1) * pg[i];
      pv[i] = b2 * pv[i] + (T(1) - b2) * pg[i] * pg[i];
      T mh = pm[i] * ib1, vh = pv[i] * ib2;
      pp[i] -= l * (mh / (std::sqrt(vh) + e) + d * pp[i]);
    }
  });
}

void CpuBackend::sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                          double wd) {
  check_same(p, g, "sgd grad");
  check_same(p, buf, "sgd momentum buffer");
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T *pp = p.data<T>(), *pb = buf.data<T>();
    const T* pg = g.data<T>();
    const T mu = T(momentum), l = T(lr), d = T(wd);
    for (int64_t i = 0; i < p.numel(); ++i) {
      pb[i] = mu * pb[i] + pg[i];
      pp[i] -= l * (pb[i] + d * pp[i]);
    }
  });
}

}  // namespace moe::ops::cpu
