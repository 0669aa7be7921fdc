// CUDA router (f32 only, as on every backend): gates, top-K with ties to the lower expert index,
// weights and the load-balancing / z-loss statistics; and the backward through all of it. One
// warp per token; lane l holds experts l, l + 32, ... (M <= 1024). The per-row arithmetic
// follows the CPU reference operation by operation (sequential over k where the CPU is); only
// the sums over experts use a warp tree. The statistics are summed over tokens by the
// deterministic column sum of reduce.cuh.
#include <climits>

#include "src/ops/cuda/reduce.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kWarps = 8;             // tokens per block
constexpr int kMaxExperts = 32 * 32;  // one bit per expert in a lane's 32-bit "taken" mask

// logsumexp of a row over the warp (every lane gets it), as the CPU: max, then sum of exp.
__device__ float warp_logsumexp(const float* r, int M, int lane) {
  float mx = -INFINITY;
  for (int j = lane; j < M; j += 32) mx = fmaxf(mx, r[j]);
  mx = warp_max(mx);
  float s = 0;
  for (int j = lane; j < M; j += 32) s += expf(r[j] - mx);
  s = warp_sum(s);
  return mx + logf(s);
}

// A top-K candidate: score, expert index (INT_MAX = none) and gate.
struct Cand {
  float score;
  int idx;
  float gate;
};

// The CPU's order: higher score first, ties to the lower index.
__device__ __forceinline__ bool better(const Cand& a, const Cand& b) {
  if (a.idx == INT_MAX) return false;
  if (b.idx == INT_MAX) return true;
  return a.score > b.score || (a.score == b.score && a.idx < b.idx);
}

// pst (n, M + 1): per token, the load-balancing probabilities p and, at column M, lse^2.
// aux_selected: p = g on the chosen experts, 0 elsewhere.
__global__ void router_forward_kernel(const float* logits, const float* bias, int64_t n, int M,
                                      int K, bool softmax, bool renorm, bool aux_selected,
                                      float* gates, int32_t* idx, float* w, float* pst) {
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (t >= n) return;
  const float* r = logits + t * M;
  float* g = gates + t * M;
  float* p = pst + t * (M + 1);
  const float lse = warp_logsumexp(r, M, lane);
  if (softmax) {
    for (int j = lane; j < M; j += 32) {
      g[j] = expf(r[j] - lse);
      p[j] = aux_selected ? 0.0f : g[j];
    }
  } else {
    float sum = 0;
    for (int j = lane; j < M; j += 32) {
      g[j] = 1.0f / (1.0f + expf(-r[j]));
      sum += g[j];
    }
    sum = warp_sum(sum);
    for (int j = lane; j < M; j += 32) p[j] = aux_selected ? 0.0f : g[j] / sum;
  }
  if (lane == 0) p[M] = lse * lse;
  // Top-K by repeated warp argmax; each lane only reads the gates it wrote itself.
  uint32_t taken = 0;
  float sel = 0;
  for (int k = 0; k < K; ++k) {
    Cand best{0.0f, INT_MAX, 0.0f};
    for (int j = lane, q = 0; j < M; j += 32, ++q) {
      if (taken >> q & 1u) continue;
      const Cand c{g[j] + (bias ? bias[j] : 0.0f), j, g[j]};
      if (better(c, best)) best = c;
    }
    for (int o = 16; o > 0; o >>= 1) {
      Cand other{__shfl_xor_sync(0xffffffffu, best.score, o),
                 __shfl_xor_sync(0xffffffffu, best.idx, o),
                 __shfl_xor_sync(0xffffffffu, best.gate, o)};
      if (better(other, best)) best = other;
    }
    if (best.idx == INT_MAX) best = Cand{0.0f, 0, 0.0f};  // unreachable: K <= M leaves a candidate
    if ((best.idx & 31) == lane) taken |= 1u << (best.idx >> 5);
    if (lane == 0) idx[t * K + k] = best.idx;
    sel += best.gate;  // in k order, as the CPU
  }
  __syncwarp();  // idx and g written by other lanes are read below
  for (int k = lane; k < K; k += 32) {
    const float gk = g[idx[t * K + k]];
    w[t * K + k] = renorm ? gk / sel : gk;
    if (aux_selected) p[idx[t * K + k]] = gk;  // distinct experts: no two lanes write one p
  }
}

__global__ void router_backward_kernel(const float* logits, const float* gates, const int32_t* idx,
                                       const float* w, const float* dw, const float* aux,
                                       float z_coef, int64_t n, int M, int K, bool softmax,
                                       bool renorm, bool aux_selected, float* dlogits) {
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (t >= n) return;
  const float *g = gates + t * M, *r = logits + t * M;
  const int32_t* it = idx + t * K;
  const float *wt = w + t * K, *dwt = dw + t * K;
  float* dr = dlogits + t * M;  // holds dL/dg until the last pass turns it into dL/dr
  float sel = 0, dot = 0;
  if (renorm) {
    for (int k = 0; k < K; ++k) {
      sel += g[it[k]];
      dot += dwt[k] * wt[k];
    }
  }
  float gsum = 0, adot = 0;
  if (aux && !softmax && !aux_selected) {  // p = g / sum(g)
    for (int j = lane; j < M; j += 32) {
      gsum += g[j];
      adot += aux[j] * g[j];
    }
    gsum = warp_sum(gsum);
    adot = warp_sum(adot) / gsum;
  }
  float gdot = 0;
  for (int j = lane; j < M; j += 32) {
    float dg = 0;
    bool chosen = false;
    for (int k = 0; k < K; ++k)
      if (it[k] == j) {
        dg += renorm ? (dwt[k] - dot) / sel : dwt[k];
        chosen = true;
      }
    if (aux && aux_selected) {
      if (chosen) dg += aux[j];
    } else if (aux) {
      dg += softmax ? aux[j] : (aux[j] - adot) / gsum;
    }
    dr[j] = dg;
    gdot += g[j] * dg;
  }
  if (softmax) gdot = warp_sum(gdot);
  const float lse = z_coef != 0.0f ? warp_logsumexp(r, M, lane) : 0.0f;
  for (int j = lane; j < M; j += 32) {
    const float dg = dr[j];
    float d = softmax ? g[j] * (dg - gdot) : dg * g[j] * (1.0f - g[j]);
    if (z_coef != 0.0f) d += z_coef * 2.0f * lse * expf(r[j] - lse);
    dr[j] = d;
  }
}

// Column sums of pst give the statistics.
struct PstTerm {
  const float* pst;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t j) const { return pst[r * cols + j]; }
};

}  // namespace

void CudaBackend::router_forward(const Tensor& logits, const Tensor& bias, const RouterOptions& opt,
                                 Tensor& gates, Tensor& idx, Tensor& w, Tensor& stats) {
  check_dev(logits, "router logits");
  check_dev(idx, "router idx");
  check_dev(w, "router w");
  check_dev(stats, "router stats");
  MOE_CHECK(logits.ndim() == 2, "router logits must be 2-D");
  const int64_t n = logits.dim(0), M = logits.dim(1), K = opt.top_k;
  MOE_CHECK(1 <= K && K <= M, "top_k ", K, " with ", M, " experts");
  MOE_CHECK(M <= kMaxExperts, "the CUDA router supports up to ", kMaxExperts, " experts, got ", M);
  check_dtype(logits, DType::F32, "router logits (the router runs in f32)");
  check_same(logits, gates, "router gates");
  check_shape(idx, {n, K}, "router idx");
  check_shape(w, {n, K}, "router w");
  check_shape(stats, {M + 1}, "router stats");
  check_dtype(idx, DType::I32, "router idx");
  check_dtype(w, DType::F32, "router w");
  check_dtype(stats, DType::F32, "router stats");
  if (opt.use_bias) {
    check_dev(bias, "router bias");
    check_shape(bias, {M}, "router bias");
    check_dtype(bias, DType::F32, "router bias");
  }
  Tensor pst = scratch(std::max<int64_t>(n * (M + 1), 1), DType::F32);
  if (n > 0) {
    router_forward_kernel<<<unsigned((n + kWarps - 1) / kWarps), 32 * kWarps, 0, stream_>>>(
        dptr<float>(logits), opt.use_bias ? dptr<float>(bias) : nullptr, n, int(M), int(K),
        opt.gate == Gate::Softmax, opt.renormalize, opt.aux_selected, dptr<float>(gates),
        dptr<int32_t>(idx),
        dptr<float>(w), dptr<float>(pst));
    MOE_CUDA_LAUNCH_CHECK("router_forward_kernel");
  }
  launch_colsum(PstTerm{dptr<float>(pst), M + 1}, n, M + 1, dptr<float>(stats),
                /*accumulate=*/false, stream_);
}

void CudaBackend::router_backward(const Tensor& logits, const Tensor& gates, const Tensor& idx,
                                  const Tensor& w, const Tensor& dw, const Tensor& aux_coef,
                                  double z_coef, const RouterOptions& opt, Tensor& dlogits) {
  check_dev(logits, "router logits");
  check_dev(idx, "router idx");
  check_dev(w, "router w");
  check_dev(dw, "router dw");
  MOE_CHECK(logits.ndim() == 2, "router logits must be 2-D");
  const int64_t n = logits.dim(0), M = logits.dim(1), K = opt.top_k;
  MOE_CHECK(1 <= K && K <= M && M <= kMaxExperts, "router_backward: top_k ", K, " with ", M,
            " experts");
  check_dtype(logits, DType::F32, "router logits (the router runs in f32)");
  check_same(logits, gates, "router gates");
  check_same(logits, dlogits, "router dlogits");
  check_shape(idx, {n, K}, "router idx");
  check_dtype(idx, DType::I32, "router idx");
  check_shape(w, {n, K}, "router w");
  check_dtype(w, DType::F32, "router w");
  check_shape(dw, {n, K}, "router dw");
  check_dtype(dw, DType::F32, "router dw");
  if (aux_coef.defined()) {
    check_dev(aux_coef, "router aux_coef");
    check_shape(aux_coef, {M}, "router aux_coef");
    check_dtype(aux_coef, DType::F32, "router aux_coef");
  }
  if (n == 0) return;
  router_backward_kernel<<<unsigned((n + kWarps - 1) / kWarps), 32 * kWarps, 0, stream_>>>(
      dptr<float>(logits), dptr<float>(gates), dptr<int32_t>(idx), dptr<float>(w), dptr<float>(dw),
      aux_coef.defined() ? dptr<float>(aux_coef) : nullptr, float(z_coef), n, int(M), int(K),
      opt.gate == Gate::Softmax, opt.renormalize, opt.aux_selected, dptr<float>(dlogits));
  MOE_CUDA_LAUNCH_CHECK("router_backward_kernel");
}

}  // namespace moe::ops::gpu
