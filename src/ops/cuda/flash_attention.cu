// Fused causal attention (FlashAttention-2's schedule, our own kernels): tiles of kRows query
// rows stream over tiles of kRows keys held in shared memory, with the online softmax (running
// max m and sum l per row, in f32), so no T x T matrix exists anywhere; the forward saves the
// row's log-sum-exp (f32) for the backward, which recomputes every probability from it. The
// backward is two kernels without atomics (deterministic): dQ per query tile over its keys, and
// dK, dV per key tile over the queries after it; delta_i = dO_i . O_i comes first.
//
// Threads: 4 per row (kRows rows = 128 threads), each holding D/4 of the row's dimensions
// (interleaved: d = 4c + sub, so the 4 threads read consecutive shared words); a dot product is
// 4 partial sums joined by two xor-shuffles inside the row's 4 lanes. Inputs f32 or bf16; every
// product, the softmax statistics and the accumulators are f32. Scalar FMAs (no tensor cores):
// correct and O(T) in memory; its speed is unmeasured (docs/performance.md). The backend's
// flash_attention_forward / _backward (fused_attention.cpp) run these, or cuDNN's for bf16.
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kRows = 32;               // query rows per block and key rows per tile
constexpr int kThreads = 4 * kRows;     // 4 threads per row
constexpr int kMaxPer = 32;             // dimensions per thread: D <= 128
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float row_sum4(float v) {
  v += __shfl_xor_sync(kFull, v, 1);
  v += __shfl_xor_sync(kFull, v, 2);
  return v;
}

// The two row-wide dot products a . x and b . y of this thread's row (4 lanes, D/4 dimensions
// each; x, y rows in shared memory), joined across the row's lanes.
__device__ __forceinline__ void row_dots(const float (&a)[kMaxPer], const float* x,
                                         const float (&b)[kMaxPer], const float* y, int D, int sub,
                                         float& ax, float& by) {
  ax = 0.f;
  by = 0.f;
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c)
    if (4 * c + sub < D) {
      ax += a[c] * x[4 * c + sub];
      by += b[c] * y[4 * c + sub];
    }
  ax = row_sum4(ax);
  by = row_sum4(by);
}

struct Geo {
  int B, T, H, D;
  int64_t N;  // width: qkv rows hold [q | k | v] of N each
  __device__ int64_t q_at(int b, int t, int h) const { return (int64_t(b) * T + t) * 3 * N + int64_t(h) * D; }
  __device__ int64_t o_at(int b, int t, int h) const { return (int64_t(b) * T + t) * N + int64_t(h) * D; }
};

// Loads rows [r0, r0 + kRows) of the qkv part at column offset `part` (0 q, N k, 2N v) of head
// h into shared f32 (zeros past T).
template <class T>
__device__ void load_tile(const T* qkv, const Geo& g, int b, int h, int r0, int64_t part, float* dst) {
  for (int e = threadIdx.x; e < kRows * g.D; e += blockDim.x) {
    const int j = e / g.D, d = e % g.D, t = r0 + j;
    dst[e] = t < g.T ? to_f(qkv[g.q_at(b, t, h) + part + d]) : 0.f;
  }
}

// The key and value tiles from row k0, between barriers (the previous tile's readers are done).
template <class T>
__device__ void load_kv_tile(const T* qkv, const Geo& g, int b, int h, int k0, float* ks, float* vs) {
  __syncthreads();
  load_tile(qkv, g, b, h, k0, g.N, ks);
  load_tile(qkv, g, b, h, k0, 2 * g.N, vs);
  __syncthreads();
}

// Loads rows [r0, r0 + kRows) of an (B*T, N) tensor's head h into shared f32.
template <class T>
__device__ void load_rows(const T* x, const Geo& g, int b, int h, int r0, float* dst) {
  for (int e = threadIdx.x; e < kRows * g.D; e += blockDim.x) {
    const int j = e / g.D, d = e % g.D, t = r0 + j;
    dst[e] = t < g.T ? to_f(x[g.o_at(b, t, h) + d]) : 0.f;
  }
}

template <class T>
__global__ void flash_fwd_kernel(const T* qkv, T* out, float* lse, Geo g, float scale) {
  extern __shared__ float sm[];
  float* ks = sm;                 // (kRows, D)
  float* vs = sm + kRows * g.D;   // (kRows, D)
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int q0 = blockIdx.x * kRows, r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const int i = q0 + r;
  const bool active = i < g.T;
  float q[kMaxPer], o[kMaxPer];
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    q[c] = active && d < g.D ? to_f(qkv[g.q_at(b, i, h) + d]) : 0.f;
    o[c] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int kend = min(g.T, q0 + kRows);  // causal: no key after the tile's last query
  for (int k0 = 0; k0 < kend; k0 += kRows) {
    load_kv_tile(qkv, g, b, h, k0, ks, vs);
    for (int j = 0; j < kRows; ++j) {
      float s = 0.f;
#pragma unroll
      for (int c = 0; c < kMaxPer; ++c)
        if (4 * c + sub < g.D) s += q[c] * ks[j * g.D + 4 * c + sub];
      s = scale * row_sum4(s);  // every lane joins the shuffles; masking comes after
      const int kj = k0 + j;
      if (active && kj <= i) {
        const float mn = fmaxf(m, s);
        const float alpha = expf(m - mn), p = expf(s - mn);  // expf(-inf) = 0 at the first key
        l = l * alpha + p;
#pragma unroll
        for (int c = 0; c < kMaxPer; ++c)
          if (4 * c + sub < g.D) o[c] = o[c] * alpha + p * vs[j * g.D + 4 * c + sub];
        m = mn;
      }
    }
  }
  if (!active) return;
  const float inv = 1.f / l;  // l >= 1: key 0 is always seen, and the max term is exp(0)
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    if (d < g.D) out[g.o_at(b, i, h) + d] = from_f<T>(o[c] * inv);
  }
  if (sub == 0) lse[int64_t(bh) * g.T + i] = m + logf(l);
}

// delta[b, h, i] = dO_i . O_i (f32), one thread per (b, h, i).
template <class T>
__global__ void flash_delta_kernel(const T* out, const T* dout, float* delta, Geo g) {
  const int64_t n = int64_t(g.B) * g.H * g.T;
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int i = int(e % g.T), bh = int(e / g.T), b = bh / g.H, h = bh % g.H;
    const int64_t at = g.o_at(b, i, h);
    float acc = 0.f;
    for (int d = 0; d < g.D; ++d) acc += to_f(dout[at + d]) * to_f(out[at + d]);
    delta[e] = acc;
  }
}

// dQ_i = scale sum_j p_ij (dp_ij - delta_i) K_j over keys j <= i; one query row per 4 lanes.
template <class T>
__global__ void flash_dq_kernel(const T* qkv, const T* dout, const float* lse, const float* delta,
                                T* dqkv, Geo g, float scale) {
  extern __shared__ float sm[];
  float* ks = sm;
  float* vs = sm + kRows * g.D;
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int q0 = blockIdx.x * kRows, r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const int i = q0 + r;
  const bool active = i < g.T;
  float q[kMaxPer], go[kMaxPer], dq[kMaxPer];
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    q[c] = active && d < g.D ? to_f(qkv[g.q_at(b, i, h) + d]) : 0.f;
    go[c] = active && d < g.D ? to_f(dout[g.o_at(b, i, h) + d]) : 0.f;
    dq[c] = 0.f;
  }
  const float li = active ? lse[int64_t(bh) * g.T + i] : 0.f;
  const float di = active ? delta[int64_t(bh) * g.T + i] : 0.f;
  const int kend = min(g.T, q0 + kRows);
  for (int k0 = 0; k0 < kend; k0 += kRows) {
    load_kv_tile(qkv, g, b, h, k0, ks, vs);
    for (int j = 0; j < kRows; ++j) {
      float s, dp;
      row_dots(q, ks + j * g.D, go, vs + j * g.D, g.D, sub, s, dp);
      const int kj = k0 + j;
      if (active && kj <= i) {
        const float p = expf(scale * s - li);
        const float ds = p * (dp - di) * scale;
#pragma unroll
        for (int c = 0; c < kMaxPer; ++c)
          if (4 * c + sub < g.D) dq[c] += ds * ks[j * g.D + 4 * c + sub];
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    if (d < g.D) dqkv[g.q_at(b, i, h) + d] = from_f<T>(dq[c]);
  }
}

// dV_j = sum_i p_ij dO_i and dK_j = scale sum_i p_ij (dp_ij - delta_i) Q_i over queries i >= j;
// one key row per 4 lanes, query tiles from the key tile's own onwards.
template <class T>
__global__ void flash_dkv_kernel(const T* qkv, const T* dout, const float* lse, const float* delta,
                                 T* dqkv, Geo g, float scale) {
  extern __shared__ float sm[];
  float* qs = sm;                    // (kRows, D)
  float* gs = sm + kRows * g.D;      // (kRows, D) dO
  float* ls = sm + 2 * kRows * g.D;  // (kRows) lse
  float* ds_ = ls + kRows;           // (kRows) delta
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int k0 = blockIdx.x * kRows, r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const int j = k0 + r;
  const bool active = j < g.T;
  float k[kMaxPer], v[kMaxPer], dk[kMaxPer], dv[kMaxPer];
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    k[c] = active && d < g.D ? to_f(qkv[g.q_at(b, j, h) + g.N + d]) : 0.f;
    v[c] = active && d < g.D ? to_f(qkv[g.q_at(b, j, h) + 2 * g.N + d]) : 0.f;
    dk[c] = dv[c] = 0.f;
  }
  for (int q0 = k0; q0 < g.T; q0 += kRows) {
    __syncthreads();
    load_tile(qkv, g, b, h, q0, 0, qs);
    load_rows(dout, g, b, h, q0, gs);
    for (int e = threadIdx.x; e < kRows; e += blockDim.x) {
      const int t = q0 + e;
      ls[e] = t < g.T ? lse[int64_t(bh) * g.T + t] : 0.f;
      ds_[e] = t < g.T ? delta[int64_t(bh) * g.T + t] : 0.f;
    }
    __syncthreads();
    for (int ii = 0; ii < kRows; ++ii) {
      float s, dp;
      row_dots(k, qs + ii * g.D, v, gs + ii * g.D, g.D, sub, s, dp);
      const int qi = q0 + ii;
      if (active && qi < g.T && qi >= j) {
        const float p = expf(scale * s - ls[ii]);
        const float dsc = p * (dp - ds_[ii]) * scale;
#pragma unroll
        for (int c = 0; c < kMaxPer; ++c)
          if (4 * c + sub < g.D) {
            dv[c] += p * gs[ii * g.D + 4 * c + sub];
            dk[c] += dsc * qs[ii * g.D + 4 * c + sub];
          }
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int c = 0; c < kMaxPer; ++c) {
    const int d = 4 * c + sub;
    if (d < g.D) {
      dqkv[g.q_at(b, j, h) + g.N + d] = from_f<T>(dk[c]);
      dqkv[g.q_at(b, j, h) + 2 * g.N + d] = from_f<T>(dv[c]);
    }
  }
}

// Our kernels' own limits; the tensors were checked by the caller (fused_attention.cpp).
Geo own_geometry(const Tensor& qkv, int B, int T, int H, const char* op) {
  const int64_t N = qkv.dim(1) / 3, D = N / H;
  MOE_CHECK(D <= 4 * kMaxPer, op, ": head dimension ", D, " above ", 4 * kMaxPer);
  MOE_CHECK(int64_t(B) * H <= 65535, op, ": B * H = ", int64_t(B) * H, " above the grid's 65535");
  return Geo{B, T, H, int(D), N};
}

}  // namespace

void CudaBackend::own_flash_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T,
                                    int H, double scale) {
  const Geo g = own_geometry(qkv, B, T, H, "flash_attention_forward");
  if (int64_t(B) * T == 0 || g.N == 0) return;
  const dim3 grid((T + kRows - 1) / kRows, B * H);
  const size_t smem = 2 * kRows * g.D * sizeof(float);
  dispatch_float(qkv.dtype(), "flash_attention_forward", [&](auto tag) {
    using F = decltype(tag);
    flash_fwd_kernel<F><<<grid, kThreads, smem, stream_>>>(dptr<F>(qkv), dptr<F>(out),
                                                            dptr<float>(lse), g, float(scale));
  });
  MOE_CUDA_LAUNCH_CHECK("flash_fwd_kernel");
}

void CudaBackend::own_flash_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                     const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                     double scale) {
  const Geo g = own_geometry(qkv, B, T, H, "flash_attention_backward");
  if (int64_t(B) * T == 0 || g.N == 0) return;
  Tensor delta = scratch(int64_t(B) * H * T, DType::F32);
  const dim3 grid((T + kRows - 1) / kRows, B * H);
  const size_t smem_q = 2 * kRows * g.D * sizeof(float);
  const size_t smem_kv = (2 * kRows * g.D + 2 * kRows) * sizeof(float);
  dispatch_float(qkv.dtype(), "flash_attention_backward", [&](auto tag) {
    using F = decltype(tag);
    const int64_t n = int64_t(B) * H * T;
    flash_delta_kernel<F><<<grid_for(n, 256), 256, 0, stream_>>>(dptr<F>(out), dptr<F>(dout),
                                                                 dptr<float>(delta), g);
    flash_dq_kernel<F><<<grid, kThreads, smem_q, stream_>>>(dptr<F>(qkv), dptr<F>(dout),
                                                             dptr<float>(lse), dptr<float>(delta),
                                                             dptr<F>(dqkv), g, float(scale));
    flash_dkv_kernel<F><<<grid, kThreads, smem_kv, stream_>>>(dptr<F>(qkv), dptr<F>(dout),
                                                               dptr<float>(lse), dptr<float>(delta),
                                                               dptr<F>(dqkv), g, float(scale));
  });
  MOE_CUDA_LAUNCH_CHECK("flash attention backward kernels");
}

}  // namespace moe::ops::gpu
