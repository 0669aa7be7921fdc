// CUDA RMSNorm: y = x * rstd * gain with rstd = 1 / sqrt(mean(x^2) + eps), and its backward.
// One block per row for the row sums; the gain gradient (a sum over rows) is a deterministic
// chunked column sum (reduce.cuh) rather than atomics.
#include "src/ops/cuda/reduce.cuh"

namespace moe::ops::gpu {
namespace {

template <class T>
__global__ void rmsnorm_forward_kernel(const T* x, const T* gain, T* y, T* rstd, int64_t n,
                                       int64_t N, float eps) {
  __shared__ float sh[32];
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* row = x + i * N;
    float ss = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const float v = to_f(row[j]);
      ss += v * v;
    }
    ss = block_sum(ss, sh);
    // The CPU's float arithmetic: 1 / sqrt(ss / N + eps), IEEE division and square root.
    const float rs = 1.0f / sqrtf(ss / float(N) + eps);
    if (threadIdx.x == 0) rstd[i] = from_f<T>(rs);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
      y[i * N + j] = from_f<T>(to_f(row[j]) * rs * to_f(gain[j]));
  }
}

// dx += rstd * (g dy) - x * rstd^3 * mean(x g dy), one block per row.
template <class T>
__global__ void rmsnorm_backward_kernel(const T* x, const T* gain, const T* rstd, const T* dy,
                                        T* dx, int64_t n, int64_t N) {
  __shared__ float sh[32];
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T *xr = x + i * N, *dyr = dy + i * N;
    const float rs = to_f(rstd[i]);
    float dot = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
      dot += to_f(xr[j]) * to_f(gain[j]) * to_f(dyr[j]);
    dot = block_sum(dot, sh);
    const float c = rs * rs * rs * dot / float(N);
    T* dxr = dx + i * N;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
      dxr[j] = from_f<T>(to_f(dxr[j]) + (rs * to_f(gain[j]) * to_f(dyr[j]) - c * to_f(xr[j])));
  }
}

// The gain gradient's summand for (row r, column j): dy * x * rstd.
template <class T>
struct DgainTerm {
  const T *x, *dy, *rstd;
  int64_t N;
  __device__ float operator()(int64_t r, int64_t j) const {
    return to_f(dy[r * N + j]) * to_f(x[r * N + j]) * to_f(rstd[r]);
  }
};

}  // namespace

void CudaBackend::rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                                  double eps) {
  check_dev(x, "rmsnorm x");
  check_dev(gain, "rmsnorm gain");
  check_dev(rstd, "rmsnorm rstd");
  MOE_CHECK(x.ndim() == 2, "rmsnorm x must be 2-D");
  const int64_t n = x.dim(0), N = x.dim(1);
  check_shape(gain, {N}, "rmsnorm gain");
  check_same(x, y, "rmsnorm y");
  check_shape(rstd, {n}, "rmsnorm rstd");
  MOE_CHECK(gain.dtype() == x.dtype() && rstd.dtype() == x.dtype(), "rmsnorm dtypes differ");
  if (n == 0) return;
  dispatch_float(x.dtype(), "rmsnorm_forward", [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_forward_kernel<T><<<grid_for(n, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(x), dptr<T>(gain), dptr<T>(y), dptr<T>(rstd), n, N, float(eps));
  });
  MOE_CUDA_LAUNCH_CHECK("rmsnorm_forward_kernel");
}

void CudaBackend::rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd,
                                   const Tensor& dy, Tensor& dx, Tensor& dgain) {
  check_dev(x, "rmsnorm x");
  check_dev(gain, "rmsnorm gain");
  check_dev(rstd, "rmsnorm rstd");
  check_dev(dgain, "rmsnorm dgain");
  MOE_CHECK(x.ndim() == 2, "rmsnorm x must be 2-D");
  const int64_t n = x.dim(0), N = x.dim(1);
  check_same(x, dy, "rmsnorm dy");
  check_same(x, dx, "rmsnorm dx");
  check_shape(gain, {N}, "rmsnorm gain");
  check_shape(rstd, {n}, "rmsnorm rstd");
  check_shape(dgain, {N}, "rmsnorm dgain");
  MOE_CHECK(gain.dtype() == x.dtype() && rstd.dtype() == x.dtype() && dgain.dtype() == x.dtype(),
            "rmsnorm dtypes differ");
  if (n == 0) return;
  dispatch_float(x.dtype(), "rmsnorm_backward", [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_backward_kernel<T><<<grid_for(n, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(x), dptr<T>(gain), dptr<T>(rstd), dptr<T>(dy), dptr<T>(dx), n, N);
    MOE_CUDA_LAUNCH_CHECK("rmsnorm_backward_kernel");
    launch_colsum(DgainTerm<T>{dptr<T>(x), dptr<T>(dy), dptr<T>(rstd), N}, n, N, dptr<T>(dgain),
                  /*accumulate=*/true, stream_);
  });
}

}  // namespace moe::ops::gpu
