// CUDA causal multi-head attention, the straightforward way: per sequence b, strided-batched
// cuBLAS GEMMs over the H heads (head h of q, k, v is a (T x D) matrix with row stride 3N at
// column offset h D inside qkv) and a masked softmax kernel, one warp per query row. The full
// T x T score matrix is computed and the upper triangle overwritten, so probs matches the CPU's
// (zeros above the diagonal). Scores are always computed in f32: for bf16, S goes to an f32
// scratch, and P is stored in bf16 (probs' dtype) for the P V product and the backward.
#include "src/ops/cuda/common.cuh"
#include "src/ops/cuda/gemm_rm.h"

namespace moe::ops::gpu {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one query row each

// rows = H * T query rows of one sequence; row r is query i = r % T of head r / T. Reads the
// scores s (f32, scaled), writes p = softmax over keys 0..i, and 0 for keys after i.
template <class T>
__global__ void causal_softmax_kernel(const float* s, T* p, int64_t rows, int T_) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int i = int(r % T_);
  const float* sr = s + r * T_;
  T* pr = p + r * T_;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, sr[j]);
  mx = warp_max(mx);
  float sum = 0;
  for (int j = lane; j <= i; j += 32) sum += expf(sr[j] - mx);
  sum = warp_sum(sum);
  const float inv = 1.0f / sum;
  // In place when s and p are the same f32 buffer: each lane rewrites only what it read.
  for (int j = lane; j < T_; j += 32) pr[j] = from_f<T>(j <= i ? expf(sr[j] - mx) * inv : 0.0f);
}

// dS = P * (dP - sum_j P dP) * scale over keys 0..i, 0 after i. dp (f32) may alias ds (f32).
template <class T>
__global__ void causal_softmax_backward_kernel(const T* p, const float* dp, T* ds, int64_t rows,
                                               int T_, float scale) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int i = int(r % T_);
  const T* pr = p + r * T_;
  const float* dr = dp + r * T_;
  float dot = 0;
  for (int j = lane; j <= i; j += 32) dot += to_f(pr[j]) * dr[j];
  dot = warp_sum(dot);
  T* out = ds + r * T_;
  for (int j = lane; j < T_; j += 32)
    out[j] = from_f<T>(j <= i ? to_f(pr[j]) * (dr[j] - dot) * scale : 0.0f);
}

void check_attention(const Tensor& qkv, int B, int T, int H) {
  MOE_CHECK(B >= 0 && T >= 0 && H >= 1, "attention B ", B, " T ", T, " H ", H);
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(0) == int64_t(B) * T && qkv.dim(1) % 3 == 0,
            "attention qkv shape ", shape_str(qkv.shape()));
  MOE_CHECK((qkv.dim(1) / 3) % H == 0, "width ", qkv.dim(1) / 3, " not divisible by ", H, " heads");
}

}  // namespace

void CudaBackend::attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T,
                                    int H, double scale) {
  check_dev(qkv, "attention qkv");
  check_dev(out, "attention out");
  check_dev(probs, "attention probs");
  check_attention(qkv, B, T, H);
  const int64_t N = qkv.dim(1) / 3, D = N / H, ld = 3 * N;
  check_shape(out, {int64_t(B) * T, N}, "attention out");
  check_shape(probs, {B, H, T, T}, "attention probs");
  MOE_CHECK(out.dtype() == qkv.dtype() && probs.dtype() == qkv.dtype(), "attention dtypes differ");
  check_float(qkv, "attention_forward");
  if (int64_t(B) * T == 0 || D == 0) return;
  const DType dt = qkv.dtype();
  const cudaDataType_t ct = cuda_type(dt);
  const bool f32 = dt == DType::F32;
  const int64_t TT = int64_t(T) * T, rows = int64_t(H) * T;
  const size_t es = dtype_size(dt);
  Tensor s_scratch = f32 ? Tensor() : scratch(H * TT, DType::F32);  // (H, T, T) scores
  const unsigned blocks = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  for (int b = 0; b < B; ++b) {
    const char* q = static_cast<const char*>(qkv.raw()) + int64_t(b) * T * ld * es;
    const char* k = q + N * es;
    const char* v = q + 2 * N * es;
    char* p = static_cast<char*>(probs.raw()) + int64_t(b) * H * TT * es;
    float* s = f32 ? reinterpret_cast<float*>(p) : dptr<float>(s_scratch);
    char* o = static_cast<char*>(out.raw()) + int64_t(b) * T * N * es;
    // S_h (T x T, f32) = scale Q_h K_h^T
    gemm_rm(cublas_, false, true, T, T, D, float(scale), Mat{q, ct, ld, D}, Mat{k, ct, ld, D}, 0.0f,
            Mat{s, CUDA_R_32F, T, TT}, H);
    dispatch_float(dt, "attention_forward", [&](auto tag) {
      using Tp = decltype(tag);
      causal_softmax_kernel<Tp>
          <<<blocks, 32 * kRowsPerBlock, 0, stream_>>>(s, reinterpret_cast<Tp*>(p), rows, T);
    });
    MOE_CUDA_LAUNCH_CHECK("causal_softmax_kernel");
    // O_h (T x D) = P_h V_h
    gemm_rm(cublas_, false, false, T, D, T, 1.0f, Mat{p, ct, T, TT}, Mat{v, ct, ld, D}, 0.0f,
            Mat{o, ct, N, D}, H);
  }
}

// Per sequence: dP = dO V^T (f32); dS = P (dP - rowsum(P dP)) scale; dQ = dS K; dK = dS^T Q;
// dV = P^T dO. Every part of dqkv is written (beta = 0).
void CudaBackend::attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout,
                                     Tensor& dqkv, int B, int T, int H, double scale) {
  check_dev(qkv, "attention qkv");
  check_dev(probs, "attention probs");
  check_dev(dout, "attention dout");
  check_attention(qkv, B, T, H);
  const int64_t N = qkv.dim(1) / 3, D = N / H, ld = 3 * N;
  check_same(qkv, dqkv, "attention dqkv");
  check_shape(dout, {int64_t(B) * T, N}, "attention dout");
  check_shape(probs, {B, H, T, T}, "attention probs");
  MOE_CHECK(dout.dtype() == qkv.dtype() && probs.dtype() == qkv.dtype(), "attention dtypes differ");
  check_float(qkv, "attention_backward");
  if (int64_t(B) * T == 0 || D == 0) return;
  const DType dt = qkv.dtype();
  const cudaDataType_t ct = cuda_type(dt);
  const bool f32 = dt == DType::F32;
  const int64_t TT = int64_t(T) * T, rows = int64_t(H) * T;
  const size_t es = dtype_size(dt);
  Tensor dp_scratch = scratch(H * TT, DType::F32);                    // dP, then dS in place (f32)
  Tensor ds_scratch = f32 ? Tensor() : scratch(H * TT, DType::BF16);  // dS for the bf16 GEMMs
  float* dp = dptr<float>(dp_scratch);
  void* ds = f32 ? static_cast<void*>(dp) : ds_scratch.raw();
  const unsigned blocks = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  for (int b = 0; b < B; ++b) {
    const int64_t off = int64_t(b) * T * ld * es;
    const char* q = static_cast<const char*>(qkv.raw()) + off;
    const char* k = q + N * es;
    const char* v = q + 2 * N * es;
    char* dq = static_cast<char*>(dqkv.raw()) + off;
    char* dk = dq + N * es;
    char* dv = dq + 2 * N * es;
    const char* p = static_cast<const char*>(probs.raw()) + int64_t(b) * H * TT * es;
    const char* dO = static_cast<const char*>(dout.raw()) + int64_t(b) * T * N * es;
    // dP_h (T x T, f32) = dO_h V_h^T
    gemm_rm(cublas_, false, true, T, T, D, 1.0f, Mat{dO, ct, N, D}, Mat{v, ct, ld, D}, 0.0f,
            Mat{dp, CUDA_R_32F, T, TT}, H);
    dispatch_float(dt, "attention_backward", [&](auto tag) {
      using Tp = decltype(tag);
      causal_softmax_backward_kernel<Tp><<<blocks, 32 * kRowsPerBlock, 0, stream_>>>(
          reinterpret_cast<const Tp*>(p), dp, static_cast<Tp*>(ds), rows, T, float(scale));
    });
    MOE_CUDA_LAUNCH_CHECK("causal_softmax_backward_kernel");
    // dQ_h (T x D) = dS_h K_h
    gemm_rm(cublas_, false, false, T, D, T, 1.0f, Mat{ds, ct, T, TT}, Mat{k, ct, ld, D}, 0.0f,
            Mat{dq, ct, ld, D}, H);
    // dK_h (T x D) = dS_h^T Q_h
    gemm_rm(cublas_, true, false, T, D, T, 1.0f, Mat{ds, ct, T, TT}, Mat{q, ct, ld, D}, 0.0f,
            Mat{dk, ct, ld, D}, H);
    // dV_h (T x D) = P_h^T dO_h
    gemm_rm(cublas_, true, false, T, D, T, 1.0f, Mat{p, ct, T, TT}, Mat{dO, ct, N, D}, 0.0f,
            Mat{dv, ct, ld, D}, H);
  }
}

}  // namespace moe::ops::gpu
