// CPU router: gates (softmax or sigmoid), top-K selection (optionally biased), weights, the
// statistics for the load-balancing and z losses, and the backward through all of it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {
namespace {

template <class T>
T logsumexp(const T* r, int64_t M) {
  T mx = r[0];
  for (int64_t j = 1; j < M; ++j) mx = std::max(mx, r[j]);
  T s = 0;
  for (int64_t j = 0; j < M; ++j) s += std::exp(r[j] - mx);
  return mx + std::log(s);
}

}  // namespace

void CpuBackend::router_forward(const Tensor& logits, const Tensor& bias, const RouterOptions& opt,
                                Tensor& gates, Tensor& idx, Tensor& w, Tensor& stats) {
  if (any_bf16({&logits, &bias, &gates, &w, &stats})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return router_forward(s.in(logits), s.in(bias), opt, s.out(gates), idx, s.out(w), s.out(stats));
  }
  MOE_CHECK(logits.ndim() == 2, "router logits must be 2-D");
  const int64_t n = logits.dim(0), M = logits.dim(1), K = opt.top_k;
  MOE_CHECK(1 <= K && K <= M, "top_k ", K, " with ", M, " experts");
  check_same(logits, gates, "router gates");
  check_shape(idx, {n, K}, "router idx");
  check_shape(w, {n, K}, "router w");
  check_shape(stats, {M + 1}, "router stats");
  MOE_CHECK(idx.dtype() == DType::I32, "router idx must be i32");
  if (opt.use_bias) check_shape(bias, {M}, "router bias");
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* r = logits.data<T>();
    T* g = gates.data<T>();
    T* pw = w.data<T>();
    T* st = stats.data<T>();
    int32_t* pi = idx.data<int32_t>();
    const T* b = opt.use_bias ? bias.data<T>() : nullptr;
    std::vector<T> score(M);
    std::vector<int32_t> order(M);
    for (int64_t j = 0; j <= M; ++j) st[j] = 0;
    for (int64_t t = 0; t < n; ++t) {
      const T* rt = r + t * M;
      T* gt = g + t * M;
      T lse = logsumexp(rt, M);
      if (opt.gate == Gate::Softmax) {
        for (int64_t j = 0; j < M; ++j) gt[j] = std::exp(rt[j] - lse);
        if (!opt.aux_selected)
          for (int64_t j = 0; j < M; ++j) st[j] += gt[j];
      } else {
        T sum = 0;
        for (int64_t j = 0; j < M; ++j) {
          gt[j] = T(1) / (T(1) + std::exp(-rt[j]));
          sum += gt[j];
        }
        if (!opt.aux_selected)
          for (int64_t j = 0; j < M; ++j) st[j] += gt[j] / sum;
      }
      st[M] += lse * lse;
      // Top-K by score, ties to the lower expert index (stable, deterministic on every backend).
      for (int64_t j = 0; j < M; ++j) {
        score[j] = gt[j] + (b ? b[j] : T(0));
        order[j] = static_cast<int32_t>(j);
      }
      std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t x, int32_t y) {
        return score[x] > score[y] || (score[x] == score[y] && x < y);
      });
      T sel = 0;
      for (int64_t k = 0; k < K; ++k) sel += gt[order[k]];
      for (int64_t k = 0; k < K; ++k) {
        pi[t * K + k] = order[k];
        pw[t * K + k] = opt.renormalize ? gt[order[k]] / sel : gt[order[k]];
        if (opt.aux_selected) st[order[k]] += gt[order[k]];
      }
    }
  });
}

void CpuBackend::router_backward(const Tensor& logits, const Tensor& gates, const Tensor& idx,
                                 const Tensor& w, const Tensor& dw, const Tensor& aux_coef,
                                 double z_coef, const RouterOptions& opt, Tensor& dlogits) {
  if (any_bf16({&logits, &gates, &w, &dw, &aux_coef, &dlogits})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return router_backward(s.in(logits), s.in(gates), idx, s.in(w), s.in(dw), s.in(aux_coef), z_coef, opt, s.out(dlogits));
  }
  const int64_t n = logits.dim(0), M = logits.dim(1), K = opt.top_k;
  check_same(logits, dlogits, "router dlogits");
  check_shape(dw, {n, K}, "router dw");
  if (aux_coef.defined()) check_shape(aux_coef, {M}, "router aux_coef");
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *r = logits.data<T>(), *g = gates.data<T>(), *pw = w.data<T>(), *pdw = dw.data<T>();
    const T* aux = aux_coef.defined() ? aux_coef.data<T>() : nullptr;
    const int32_t* pi = idx.data<int32_t>();
    T* dr = dlogits.data<T>();
    std::vector<T> dg(M);
    for (int64_t t = 0; t < n; ++t) {
      const T *gt = g + t * M, *rt = r + t * M;
      std::fill(dg.begin(), dg.end(), T(0));
      const int32_t* it = pi + t * K;
      if (opt.renormalize) {
        T sel = 0, dot = 0;
        for (int64_t k = 0; k < K; ++k) {
          sel += gt[it[k]];
          dot += pdw[t * K + k] * pw[t * K + k];
        }
        for (int64_t k = 0; k < K; ++k) dg[it[k]] += (pdw[t * K + k] - dot) / sel;
      } else {
        for (int64_t k = 0; k < K; ++k) dg[it[k]] += pdw[t * K + k];
      }
      if (aux && opt.aux_selected) {  // p = g on the chosen experts only
        for (int64_t k = 0; k < K; ++k) dg[it[k]] += aux[it[k]];
      } else if (aux) {
        if (opt.gate == Gate::Softmax) {
          for (int64_t j = 0; j < M; ++j) dg[j] += aux[j];
        } else {  // p = g / sum(g)
          T sum = 0, dot = 0;
          for (int64_t j = 0; j < M; ++j) sum += gt[j];
          for (int64_t j = 0; j < M; ++j) dot += aux[j] * gt[j];
          dot /= sum;
          for (int64_t j = 0; j < M; ++j) dg[j] += (aux[j] - dot) / sum;
        }
      }
      T* drt = dr + t * M;
      if (opt.gate == Gate::Softmax) {
        T dot = 0;
        for (int64_t j = 0; j < M; ++j) dot += gt[j] * dg[j];
        for (int64_t j = 0; j < M; ++j) drt[j] = gt[j] * (dg[j] - dot);
      } else {
        for (int64_t j = 0; j < M; ++j) drt[j] = dg[j] * gt[j] * (T(1) - gt[j]);
      }
      if (z_coef != 0) {
        T lse = logsumexp(rt, M);
        for (int64_t j = 0; j < M; ++j) drt[j] += T(z_coef) * T(2) * lse * std::exp(rt[j] - lse);
      }
    }
  });
}

}  // namespace moe::ops::cpu
