// CPU softmax cross-entropy, fused with its gradient (as llm.c's classifier): one pass per row.
#include <algorithm>
#include <cmath>

#include "src/ops/cpu/cpu_backend.h"

namespace moe::ops::cpu {

double CpuBackend::cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                                 double grad_scale) {
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
      T mx = *std::max_element(row, row + V);
      T sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - mx);
      T lse = mx + std::log(sum);
      total += static_cast<double>(lse - row[tg[i]]);
      T gs = T(grad_scale);
      for (int64_t j = 0; j < V; ++j) drow[j] = gs * std::exp(row[j] - lse);
      drow[tg[i]] -= gs;
    }
  });
  return total;
}

}  // namespace moe::ops::cpu
