// CPU elementwise ops and reductions used by the trainer (fills, axpy, norms, finiteness).
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {

void CpuBackend::fill(Tensor& t, double value) {
  check_cpu(t, "fill");
  if (t.dtype() == DType::I32) {
    int32_t* p = t.data<int32_t>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<int32_t>(value);
    return;
  }
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(value);
  });
}

void CpuBackend::axpy(const Tensor& x, Tensor& y, double alpha) {
  MOE_CHECK(x.numel() == y.numel() && x.dtype() == y.dtype(), "axpy ", shape_str(x.shape()), " ",
            shape_str(y.shape()));
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    T a = T(alpha);
    for (int64_t i = 0; i < x.numel(); ++i) py[i] += a * px[i];
  });
}

void CpuBackend::scale(Tensor& t, double alpha) {
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    T a = T(alpha);
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= a;
  });
}

double CpuBackend::sum_squares(const Tensor& t) {
  double s = 0;
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) s += static_cast<double>(p[i]) * p[i];
  });
  return s;
}

bool CpuBackend::all_finite(const Tensor& t) {
  bool ok = true;
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) ok &= std::isfinite(p[i]);
  });
  return ok;
}

}  // namespace moe::ops::cpu
