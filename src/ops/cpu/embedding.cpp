// CPU embedding lookup (row gather) and its backward (row scatter-add).
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {

void CpuBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double alpha,
                                   bool accumulate) {
  if (any_bf16({&table, &out})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return embedding_forward(ids, s.in(table), s.out(out), alpha, accumulate);
  }
  MOE_CHECK(ids.dtype() == DType::I32 && table.ndim() == 2 && out.ndim() == 2, "embedding args");
  int64_t n = ids.numel(), V = table.dim(0), N = table.dim(1);
  check_shape(out, {n, N}, "embedding out");
  const int32_t* id = ids.data<int32_t>();
  dispatch_float(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* tab = table.data<T>();
    T* o = out.data<T>();
    T a = T(alpha);
    for (int64_t i = 0; i < n; ++i) {
      MOE_CHECK(id[i] >= 0 && id[i] < V, "token id ", id[i], " outside vocabulary of ", V);
      const T* row = tab + static_cast<int64_t>(id[i]) * N;
      T* dst = o + i * N;
      if (accumulate) {
        for (int64_t j = 0; j < N; ++j) dst[j] += a * row[j];
      } else {
        for (int64_t j = 0; j < N; ++j) dst[j] = a * row[j];
      }
    }
  });
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable,
                                    double alpha) {
  if (any_bf16({&dout, &dtable})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return embedding_backward(ids, s.in(dout), s.out(dtable), alpha);
  }
  int64_t n = ids.numel(), N = dtable.dim(1);
  check_shape(dout, {n, N}, "embedding dout");
  const int32_t* id = ids.data<int32_t>();
  dispatch_float(dtable.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* d = dout.data<T>();
    T* tab = dtable.data<T>();
    T a = T(alpha);
    for (int64_t i = 0; i < n; ++i) {
      T* row = tab + static_cast<int64_t>(id[i]) * N;
      for (int64_t j = 0; j < N; ++j) row[j] += a * d[i * N + j];
    }
  });
}

}  // namespace moe::ops::cpu
