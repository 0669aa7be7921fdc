// CPU elementwise ops and reductions used by the trainer (fills, axpy, norms, finiteness).
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {

template <class T>
inline void axpy_k(const T* x, T* y, T a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
template <class T>
inline void scale_k(T* x, T a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}
// Sum of squares in double with 8 independent partial sums (a fixed order, so the result does
// not depend on the instruction set the clone runs with).
template <class T>
inline double sumsq_k(const T* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(x[i + j]) * double(x[i + j]);
  for (; i < n; ++i) acc[0] += double(x[i]) * double(x[i]);
  double s = 0;
  for (double a : acc) s += a;
  return s;
}

MOE_CPU_CLONES void axpy_f32(const float* x, float* y, float a, int64_t n) { axpy_k(x, y, a, n); }
MOE_CPU_CLONES void scale_f32(float* x, float a, int64_t n) { scale_k(x, a, n); }
MOE_CPU_CLONES double sumsq_f32(const float* x, int64_t n) { return sumsq_k(x, n); }
void axpy_any(const float* x, float* y, float a, int64_t n) { axpy_f32(x, y, a, n); }
void axpy_any(const double* x, double* y, double a, int64_t n) { axpy_k(x, y, a, n); }
void scale_any(float* x, float a, int64_t n) { scale_f32(x, a, n); }
void scale_any(double* x, double a, int64_t n) { scale_k(x, a, n); }
double sumsq_any(const float* x, int64_t n) { return sumsq_f32(x, n); }
double sumsq_any(const double* x, int64_t n) { return sumsq_k(x, n); }

}  // namespace

void CpuBackend::fill(Tensor& t, double value) {
  if (any_bf16({&t})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return fill(s.out(t), value);
  }
  check_cpu(t, "fill");
  const int64_t n = t.numel();
  if (t.dtype() == DType::I32) {
    int32_t* p = t.data<int32_t>();
    std::fill(p, p + n, static_cast<int32_t>(value));
    return;
  }
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    std::fill(p, p + n, T(value));
  });
}

void CpuBackend::axpy(const Tensor& x, Tensor& y, double alpha) {
  if (any_bf16({&x, &y})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return axpy(s.in(x), s.out(y), alpha);
  }
  MOE_CHECK(x.numel() == y.numel() && x.dtype() == y.dtype(), "axpy ", shape_str(x.shape()), " ",
            shape_str(y.shape()));
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    axpy_any(x.data<T>(), y.data<T>(), T(alpha), x.numel());
  });
}

void CpuBackend::scale(Tensor& t, double alpha) {
  if (any_bf16({&t})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return scale(s.out(t), alpha);
  }
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scale_any(t.data<T>(), T(alpha), t.numel());
  });
}

double CpuBackend::sum_squares(const Tensor& t) {
  if (any_bf16({&t})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return sum_squares(s.in(t));
  }
  double s = 0;
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    s = sumsq_any(t.data<T>(), t.numel());
  });
  return s;
}

bool CpuBackend::all_finite(const Tensor& t) {
  // A sum of squares is finite only if every element is (squares of finite floats up to
  // 3.4e38 stay finite in double).
  return std::isfinite(sum_squares(t));
}

}  // namespace moe::ops::cpu
