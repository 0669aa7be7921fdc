// CUDA elementwise ops and reductions: fill, axpy, scale, sum of squares (double, deterministic
// two-pass reduction) and the finiteness test.
#include "src/ops/cuda/reduce.cuh"

namespace moe::ops::gpu {
namespace {

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = v;
}

// y += a x, in float (the CPU's f32 arithmetic).
template <class T>
__global__ void axpy_kernel(const T* x, T* y, int64_t n, float a) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = from_f<T>(to_f(y[i]) + a * to_f(x[i]));
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, float a) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) x[i] = from_f<T>(to_f(x[i]) * a);
}

// Sets *flag on any non-finite element (every writer writes the same 1: no ordering needed).
template <class T>
__global__ void nonfinite_kernel(const T* x, int64_t n, int32_t* flag) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    if (!isfinite(to_f(x[i]))) *flag = 1;
}

constexpr int kThreads = 256;

}  // namespace

void CudaBackend::fill(Tensor& t, double value) {
  check_dev(t, "fill");
  const int64_t n = t.numel();
  if (n == 0) return;
  if (t.dtype() == DType::I32) {
    fill_kernel<int32_t><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
        dptr<int32_t>(t), n, static_cast<int32_t>(value));
  } else if (t.dtype() == DType::F32) {
    fill_kernel<float>
        <<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<float>(t), n, float(value));
  } else {
    check_float(t, "fill");
    fill_kernel<bf16><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<bf16>(t), n,
                                                                       __double2bfloat16(value));
  }
  MOE_CUDA_LAUNCH_CHECK("fill_kernel");
}

void CudaBackend::axpy(const Tensor& x, Tensor& y, double alpha) {
  check_dev(x, "axpy x");
  check_dev(y, "axpy y");
  MOE_CHECK(x.numel() == y.numel() && x.dtype() == y.dtype(), "axpy ", shape_str(x.shape()), " ",
            shape_str(y.shape()));
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    axpy_kernel<T>
        <<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(x), dptr<T>(y), n, float(alpha));
  });
  MOE_CUDA_LAUNCH_CHECK("axpy_kernel");
}

void CudaBackend::scale(Tensor& t, double alpha) {
  check_dev(t, "scale");
  const int64_t n = t.numel();
  if (n == 0) return;
  dispatch_float(t.dtype(), "scale", [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(t), n, float(alpha));
  });
  MOE_CUDA_LAUNCH_CHECK("scale_kernel");
}

double CudaBackend::sum_squares(const Tensor& t) {
  check_dev(t, "sum_squares");
  dispatch_float(t.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    launch_sum<T, true>(dptr<T>(t), t.numel(), &status_->result, stream_);
  });
  return fetch_status("sum_squares").result;
}

bool CudaBackend::all_finite(const Tensor& t) {
  check_dev(t, "all_finite");
  const int64_t n = t.numel();
  MOE_CUDA_CHECK(cudaMemsetAsync(&status_->flag, 0, sizeof(int32_t), stream_));
  if (n > 0) {
    dispatch_float(t.dtype(), "all_finite", [&](auto tag) {
      using T = decltype(tag);
      nonfinite_kernel<T>
          <<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(t), n, &status_->flag);
    });
    MOE_CUDA_LAUNCH_CHECK("nonfinite_kernel");
  }
  return fetch_status("all_finite").flag == 0;
}

}  // namespace moe::ops::gpu
