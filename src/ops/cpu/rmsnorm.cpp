// CPU RMSNorm: y = x * rstd * gain with rstd = 1 / sqrt(mean(x^2) + eps), and its backward.
// Whole-tensor float kernels are compiled per instruction set (MOE_CPU_CLONES).
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {

template <class T>
inline void rms_fwd(const T* x, const T* g, T* y, T* r, int64_t n, int64_t N, T eps) {
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * N;
    T ss = 0;
    for (int64_t j = 0; j < N; ++j) ss += row[j] * row[j];
    T rs = T(1) / std::sqrt(ss / T(N) + eps);
    r[i] = rs;
    for (int64_t j = 0; j < N; ++j) y[i * N + j] = row[j] * rs * g[j];
  }
}

// dx += rstd * (g*dy - x * rstd^2 * mean(x * g * dy)); dgain += sum_rows dy * x * rstd.
template <class T>
inline void rms_bwd(const T* x, const T* g, const T* r, const T* dy, T* dx, T* dg, int64_t n, int64_t N) {
  for (int64_t i = 0; i < n; ++i) {
    const T *xr = x + i * N, *dyr = dy + i * N;
    const T rs = r[i];
    T dot = 0;
    for (int64_t j = 0; j < N; ++j) {
      dot += xr[j] * g[j] * dyr[j];
      dg[j] += dyr[j] * xr[j] * rs;
    }
    const T c = rs * rs * rs * dot / T(N);
    T* dxr = dx + i * N;
    for (int64_t j = 0; j < N; ++j) dxr[j] += rs * g[j] * dyr[j] - c * xr[j];
  }
}

MOE_CPU_CLONES void rms_fwd_f32(const float* x, const float* g, float* y, float* r, int64_t n, int64_t N, float eps) {
  rms_fwd(x, g, y, r, n, N, eps);
}
MOE_CPU_CLONES void rms_bwd_f32(const float* x, const float* g, const float* r, const float* dy, float* dx, float* dg,
                                int64_t n, int64_t N) {
  rms_bwd(x, g, r, dy, dx, dg, n, N);
}
void rms_fwd_any(const float* x, const float* g, float* y, float* r, int64_t n, int64_t N, float eps) {
  rms_fwd_f32(x, g, y, r, n, N, eps);
}
void rms_fwd_any(const double* x, const double* g, double* y, double* r, int64_t n, int64_t N, double eps) {
  rms_fwd(x, g, y, r, n, N, eps);
}
void rms_bwd_any(const float* x, const float* g, const float* r, const float* dy, float* dx, float* dg, int64_t n,
                 int64_t N) {
  rms_bwd_f32(x, g, r, dy, dx, dg, n, N);
}
void rms_bwd_any(const double* x, const double* g, const double* r, const double* dy, double* dx, double* dg,
                 int64_t n, int64_t N) {
  rms_bwd(x, g, r, dy, dx, dg, n, N);
}

}  // namespace

void CpuBackend::rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                                 double eps) {
  if (any_bf16({&x, &gain, &y, &rstd})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return rmsnorm_forward(s.in(x), s.in(gain), s.out(y), s.out(rstd), eps);
  }
  MOE_CHECK(x.ndim() == 2, "rmsnorm x must be 2-D");
  const int64_t n = x.dim(0), N = x.dim(1);
  check_shape(gain, {N}, "rmsnorm gain");
  check_same(x, y, "rmsnorm y");
  check_shape(rstd, {n}, "rmsnorm rstd");
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rms_fwd_any(x.data<T>(), gain.data<T>(), y.data<T>(), rstd.data<T>(), n, N, T(eps));
  });
}

void CpuBackend::rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd,
                                  const Tensor& dy, Tensor& dx, Tensor& dgain) {
  if (any_bf16({&x, &gain, &rstd, &dy, &dx, &dgain})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return rmsnorm_backward(s.in(x), s.in(gain), s.in(rstd), s.in(dy), s.out(dx), s.out(dgain));
  }
  const int64_t n = x.dim(0), N = x.dim(1);
  check_same(x, dy, "rmsnorm dy");
  check_same(x, dx, "rmsnorm dx");
  check_shape(dgain, {N}, "rmsnorm dgain");
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rms_bwd_any(x.data<T>(), gain.data<T>(), rstd.data<T>(), dy.data<T>(), dx.data<T>(), dgain.data<T>(), n, N);
  });
}

}  // namespace moe::ops::cpu
