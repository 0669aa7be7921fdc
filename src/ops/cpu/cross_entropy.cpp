// CPU softmax cross-entropy, fused with its gradient (as llm.c's classifier): one pass per row.
#include <algorithm>
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {
namespace {
template <class T>
void scale_row(T* r, int64_t n, T s) {
  for (int64_t j = 0; j < n; ++j) r[j] *= s;
}
}  // namespace

double CpuBackend::cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                                 double grad_scale) {
  if (any_bf16({&logits, &dlogits})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return cross_entropy(s.in(logits), targets, s.out(dlogits), grad_scale);
  }
  MOE_CHECK(logits.ndim() == 2 && targets.dtype() == DType::I32, "cross_entropy args");
  const int64_t n = logits.dim(0), V = logits.dim(1);
  MOE_CHECK(targets.numel() == n, "cross_entropy targets ", targets.numel(), " for ", n, " rows");
  check_same(logits, dlogits, "cross_entropy dlogits");
  const int32_t* tg = targets.data<int32_t>();
  double total = 0;
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.data<T>();
    T* d = dlogits.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T* row = x + i * V;
      T* drow = d + i * V;
      MOE_CHECK(tg[i] >= 0 && tg[i] < V, "target ", tg[i], " outside vocabulary of ", V);
      const T target = row[tg[i]];  // read before drow (possibly the same memory) is written
      if (drow != row) std::copy(row, row + V, drow);
      T lse = softmax_row_any(drow, V);
      total += static_cast<double>(lse - target);
      const T gs = T(grad_scale);
      if (gs != T(1)) scale_row(drow, V, gs);
      drow[tg[i]] -= gs;
    }
  });
  return total;
}

}  // namespace moe::ops::cpu
