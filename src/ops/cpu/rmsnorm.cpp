// CPU RMSNorm: y = x * rstd * gain with rstd = 1 / sqrt(mean(x^2) + eps), and its backward.
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {

void CpuBackend::rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                                 double eps) {
  MOE_CHECK(x.ndim() == 2, "rmsnorm x must be 2-D");
  int64_t n = x.dim(0), N = x.dim(1);
  check_shape(gain, {N}, "rmsnorm gain");
  check_same(x, y, "rmsnorm y");
  check_shape(rstd, {n}, "rmsnorm rstd");
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *g = gain.data<T>();
    T *py = y.data<T>(), *r = rstd.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T* row = px + i * N;
      T ss = 0;
      for (int64_t j = 0; j < N; ++j) ss += row[j] * row[j];
      T rs = T(1) / std::sqrt(ss / T(N) + T(eps));
      r[i] = rs;
      for (int64_t j = 0; j < N; ++j) py[i * N + j] = row[j] * rs * g[j];
    }
  });
}

// dx = rstd * (g*dy - x * rstd^2 * mean(x * g * dy)); dgain += sum_rows dy * x * rstd.
void CpuBackend::rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd,
                                  const Tensor& dy, Tensor& dx, Tensor& dgain) {
  int64_t n = x.dim(0), N = x.dim(1);
  check_same(x, dy, "rmsnorm dy");
  check_same(x, dx, "rmsnorm dx");
  check_shape(dgain, {N}, "rmsnorm dgain");
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *g = gain.data<T>(), *r = rstd.data<T>(), *pdy = dy.data<T>();
    T *pdx = dx.data<T>(), *dg = dgain.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T *xr = px + i * N, *dyr = pdy + i * N;
      T rs = r[i], dot = 0;
      for (int64_t j = 0; j < N; ++j) {
        dot += xr[j] * g[j] * dyr[j];
        dg[j] += dyr[j] * xr[j] * rs;
      }
      T c = rs * rs * rs * dot / T(N);
      T* dxr = pdx + i * N;
      for (int64_t j = 0; j < N; ++j) dxr[j] += rs * g[j] * dyr[j] - c * xr[j];
    }
  });
}

}  // namespace moe::ops::cpu
