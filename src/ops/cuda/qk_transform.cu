// CUDA QK-norm (RMSNorm without a gain, per head) and RoPE (half-split rotation, per head) on the
// q and k thirds of qkv (B*T, 3N); the CPU reference is src/ops/cpu/qk_transform.cpp. The norm
// runs one block per row (heads in turn, fixed-order block sums); the rotation one thread per
// pair, its angle in double like the CPU's, so both round the same cos and sin.
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

template <class T>
__global__ void qk_norm_forward_kernel(const T* x, T* y, float* rstd, int64_t n, int64_t N, int H,
                                       float eps) {
  __shared__ float sh[32];
  const int64_t D = N / H;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const T* xr = x + r * 3 * N;
    T* yr = y + r * 3 * N;
    for (int h = 0; h < 2 * H; ++h) {
      float ss = 0;
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        const float v = to_f(xr[h * D + d]);
        ss += v * v;
      }
      ss = block_sum(ss, sh);
      const float rs = 1.0f / sqrtf(ss / float(D) + eps);
      if (threadIdx.x == 0) rstd[r * 2 * H + h] = rs;
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        yr[h * D + d] = from_f<T>(to_f(xr[h * D + d]) * rs);
    }
    if (y != x)
      for (int64_t j = 2 * N + threadIdx.x; j < 3 * N; j += blockDim.x) yr[j] = xr[j];
  }
}

// dx = rstd dy - x rstd^3 mean(x dy) per head. Each thread writes only the elements it read
// for the dot, after the block sum, so dx may alias dy.
template <class T>
__global__ void qk_norm_backward_kernel(const T* x, const float* rstd, const T* dy, T* dx,
                                        int64_t n, int64_t N, int H) {
  __shared__ float sh[32];
  const int64_t D = N / H;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    for (int h = 0; h < 2 * H; ++h) {
      const int64_t o = r * 3 * N + h * D;
      const float rs = rstd[r * 2 * H + h];
      float dot = 0;
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dot += to_f(x[o + d]) * to_f(dy[o + d]);
      dot = block_sum(dot, sh);
      const float c = rs * rs * rs * dot / float(D);
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        dx[o + d] = from_f<T>(rs * to_f(dy[o + d]) - c * to_f(x[o + d]));
    }
    if (dx != dy)
      for (int64_t j = 2 * N + threadIdx.x; j < 3 * N; j += blockDim.x)
        dx[r * 3 * N + j] = dy[r * 3 * N + j];
  }
}

// One thread per (row, q/k head, pair d < D/2); sign -1 rotates back (the backward).
template <class T>
__global__ void rope_kernel(T* x, int64_t n, int64_t N, int T_, int H, double base, double sign) {
  const int64_t D = N / H, half = D / 2, total = n * 2 * H * half;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t d = i % half, h = (i / half) % (2 * H), r = i / (half * 2 * H);
    const double a = double(r % T_) * pow(base, -double(2 * d) / double(D));
    const float c = float(cos(a)), s = float(sign * sin(a));
    T* v = x + r * 3 * N + h * D;
    const float p = to_f(v[d]), q = to_f(v[d + half]);
    v[d] = from_f<T>(p * c - q * s);
    v[d + half] = from_f<T>(q * c + p * s);
  }
}

void check_qkv(const Tensor& qkv, int H, const char* what) {
  check_dev(qkv, what);
  check_float(qkv, what);
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(1) % 3 == 0, what, " must be (B*T, 3N), got ",
            shape_str(qkv.shape()));
  MOE_CHECK(H >= 1 && (qkv.dim(1) / 3) % H == 0, what, ": width ", qkv.dim(1) / 3,
            " not divisible by ", H, " heads");
}

}  // namespace

void CudaBackend::qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) {
  check_qkv(qkv, H, "qk_norm qkv");
  const int64_t n = qkv.dim(0), N = qkv.dim(1) / 3;
  check_same(qkv, out, "qk_norm out");
  check_dev(rstd, "qk_norm rstd");
  check_shape(rstd, {n, 2 * int64_t(H)}, "qk_norm rstd");
  check_dtype(rstd, DType::F32, "qk_norm rstd");
  if (n == 0) return;
  dispatch_float(qkv.dtype(), "qk_norm_forward", [&](auto tag) {
    using T = decltype(tag);
    qk_norm_forward_kernel<T><<<grid_for(n, 1), row_threads(N / H), 0, stream_>>>(
        dptr<T>(qkv), dptr<T>(out), dptr<float>(rstd), n, N, H, float(eps));
  });
  MOE_CUDA_LAUNCH_CHECK("qk_norm_forward_kernel");
}

void CudaBackend::qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout,
                                   Tensor& dqkv, int H) {
  check_qkv(qkv, H, "qk_norm qkv");
  const int64_t n = qkv.dim(0), N = qkv.dim(1) / 3;
  check_same(qkv, dout, "qk_norm dout");
  check_same(qkv, dqkv, "qk_norm dqkv");
  check_dev(rstd, "qk_norm rstd");
  check_shape(rstd, {n, 2 * int64_t(H)}, "qk_norm rstd");
  check_dtype(rstd, DType::F32, "qk_norm rstd");
  if (n == 0) return;
  dispatch_float(qkv.dtype(), "qk_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    qk_norm_backward_kernel<T><<<grid_for(n, 1), row_threads(N / H), 0, stream_>>>(
        dptr<T>(qkv), dptr<float>(rstd), dptr<T>(dout), dptr<T>(dqkv), n, N, H);
  });
  MOE_CUDA_LAUNCH_CHECK("qk_norm_backward_kernel");
}

namespace {
void launch_rope(Tensor& x, int T, int H, double base, double sign, cudaStream_t stream) {
  check_qkv(x, H, "rope qkv");
  const int64_t n = x.dim(0), N = x.dim(1) / 3;
  MOE_CHECK((N / H) % 2 == 0, "rope: head size ", N / H, " is odd");
  const int64_t total = n * 2 * H * (N / H / 2);
  if (total == 0) return;
  dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using V = decltype(tag);
    rope_kernel<V><<<grid_for(total, 256), 256, 0, stream>>>(dptr<V>(x), n, N, T, H, base, sign);
  });
  MOE_CUDA_LAUNCH_CHECK("rope_kernel");
}
}  // namespace

void CudaBackend::rope_forward(Tensor& qkv, int T, int H, double base) {
  launch_rope(qkv, T, H, base, 1.0, stream_);
}

void CudaBackend::rope_backward(Tensor& dqkv, int T, int H, double base) {
  launch_rope(dqkv, T, H, base, -1.0, stream_);
}

}  // namespace moe::ops::gpu
