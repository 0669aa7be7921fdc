// CPU token permutation for the MoE layer: gather rows into dispatch order, the weighted combine
// back into token order, and their backwards. Deterministic: each output row is one fixed sum.
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {

void CpuBackend::gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) {
  if (any_bf16({&src, &dst})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gather_rows(s.in(src), rows, s.out(dst));
  }
  MOE_CHECK(rows.dtype() == DType::I32 && src.ndim() == 2 && dst.ndim() == 2, "gather_rows args");
  const int64_t m = rows.numel(), n = src.dim(0), N = src.dim(1);
  check_shape(dst, {m, N}, "gather_rows dst");
  const int32_t* r = rows.data<int32_t>();
  dispatch_float(src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.data<T>();
    T* d = dst.data<T>();
    for (int64_t i = 0; i < m; ++i) {
      MOE_CHECK(r[i] >= 0 && r[i] < n, "gather row ", r[i], " of ", n);
      std::copy(s + int64_t(r[i]) * N, s + int64_t(r[i] + 1) * N, d + i * N);
    }
  });
}

void CpuBackend::combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c,
                                 Tensor& out) {
  if (any_bf16({&y, &w, &out})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return combine_forward(s.in(y), slot, s.in(w), c, s.out(out));
  }
  const int64_t n = slot.dim(0), K = slot.dim(1), N = y.dim(1), m = y.dim(0);
  check_shape(w, {n, K}, "combine w");
  check_shape(out, {n, N}, "combine out");
  const int32_t* sl = slot.data<int32_t>();
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *py = y.data<T>(), *pw = w.data<T>();
    T* o = out.data<T>();
    for (int64_t t = 0; t < n; ++t) {
      T* ot = o + t * N;
      std::fill(ot, ot + N, T(0));
      for (int64_t k = 0; k < K; ++k) {
        int32_t s = sl[t * K + k];
        if (s < 0) continue;
        MOE_CHECK(s < m, "combine slot ", s, " of ", m);
        axpy_row_any(py + int64_t(s) * N, ot, N, T(c) * pw[t * K + k]);
      }
    }
  });
}

void CpuBackend::combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot,
                                  const Tensor& w, double c, Tensor& dy, Tensor& dw) {
  if (any_bf16({&dout, &y, &w, &dy, &dw})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return combine_backward(s.in(dout), s.in(y), slot, s.in(w), c, s.out(dy), s.out(dw));
  }
  const int64_t n = slot.dim(0), K = slot.dim(1), N = y.dim(1);
  check_shape(dout, {n, N}, "combine dout");
  check_same(y, dy, "combine dy");
  check_shape(dw, {n, K}, "combine dw");
  const int32_t* sl = slot.data<int32_t>();
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *py = y.data<T>(), *pw = w.data<T>(), *pd = dout.data<T>();
    T *pdy = dy.data<T>(), *pdw = dw.data<T>();
    std::fill(pdy, pdy + dy.numel(), T(0));
    for (int64_t t = 0; t < n; ++t) {
      const T* dt = pd + t * N;
      for (int64_t k = 0; k < K; ++k) {
        int32_t s = sl[t * K + k];
        if (s < 0) {
          pdw[t * K + k] = 0;
          continue;
        }
        T* dyr = pdy + int64_t(s) * N;
        axpy_row_any(dt, dyr, N, T(c) * pw[t * K + k]);  // dyr is zero: this writes it
        pdw[t * K + k] = T(c) * dot_row_any(dt, py + int64_t(s) * N, N);
      }
    }
  });
}

void CpuBackend::scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) {
  if (any_bf16({&src, &dx})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return scatter_add_slots(s.in(src), slot, s.out(dx));
  }
  const int64_t n = slot.dim(0), K = slot.dim(1), N = src.dim(1);
  check_shape(dx, {n, N}, "scatter_add_slots dx");
  const int32_t* sl = slot.data<int32_t>();
  dispatch_float(src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.data<T>();
    T* d = dx.data<T>();
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t k = 0; k < K; ++k) {
        int32_t r = sl[t * K + k];
        if (r < 0) continue;
        axpy_row_any(s + int64_t(r) * N, d + t * N, N, T(1));
      }
    }
  });
}

}  // namespace moe::ops::cpu
