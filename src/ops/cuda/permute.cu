// CUDA token permutation for the MoE layer: gather rows into dispatch order, the weighted combine
// back into token order, and their backwards. Deterministic without atomics: one block per
// output row (token), and each token's K contributions are added in k order, as the CPU does.
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

// dst[i] = src[rows[i]]; one block per destination row.
template <class T>
__global__ void gather_rows_kernel(const T* src, const int32_t* rows, T* dst, int64_t m, int64_t n,
                                   int64_t N, DeviceStatus* st) {
  for (int64_t i = blockIdx.x; i < m; i += gridDim.x) {
    const int32_t r = rows[i];
    if (r < 0 || r >= n) {
      if (threadIdx.x == 0) record_error(st, kErrRow, r);
      continue;
    }
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) dst[i * N + j] = src[int64_t(r) * N + j];
  }
}

// out[t] = sum_k (c w[t,k]) y[slot[t,k]], skipping slot < 0; one block per token.
template <class T>
__global__ void combine_forward_kernel(const T* y, const int32_t* slot, const T* w, float c, T* out,
                                       int64_t n, int K, int64_t m, int64_t N, DeviceStatus* st) {
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    for (int k = 0; k < K; ++k) {
      const int32_t s = slot[t * K + k];
      if (s >= m && threadIdx.x == 0) record_error(st, kErrSlot, s);
    }
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      float acc = 0;
      for (int k = 0; k < K; ++k) {
        const int32_t s = slot[t * K + k];
        if (s < 0 || s >= m) continue;
        const float a = c * to_f(w[t * K + k]);
        acc += a * to_f(y[int64_t(s) * N + j]);
      }
      out[t * N + j] = from_f<T>(acc);
    }
  }
}

// dy[slot] = c w dout[t] and dw[t,k] = c <dout[t], y[slot]>; one block per token (dy was zeroed).
template <class T>
__global__ void combine_backward_kernel(const T* dout, const T* y, const int32_t* slot, const T* w,
                                        float c, T* dy, T* dw, int64_t n, int K, int64_t m,
                                        int64_t N, DeviceStatus* st) {
  __shared__ float sh[32];
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const T* dt = dout + t * N;
    for (int k = 0; k < K; ++k) {
      const int32_t s = slot[t * K + k];
      if (s < 0 || s >= m) {
        if (threadIdx.x == 0) {
          if (s >= m) record_error(st, kErrSlot, s);
          dw[t * K + k] = from_f<T>(0.0f);
        }
        continue;
      }
      const float a = c * to_f(w[t * K + k]);
      const T* yr = y + int64_t(s) * N;
      T* dyr = dy + int64_t(s) * N;
      float dot = 0;
      for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
        const float d = to_f(dt[j]);
        dyr[j] = from_f<T>(a * d);
        dot += d * to_f(yr[j]);
      }
      dot = block_sum(dot, sh);
      if (threadIdx.x == 0) dw[t * K + k] = from_f<T>(c * dot);
    }
  }
}

// dx[t] += sum_k src[slot[t,k]] in k order, skipping slot < 0; one block per token.
template <class T>
__global__ void scatter_add_slots_kernel(const T* src, const int32_t* slot, T* dx, int64_t n, int K,
                                         int64_t m, int64_t N, DeviceStatus* st) {
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    for (int k = 0; k < K; ++k) {
      const int32_t s = slot[t * K + k];
      if (s >= m && threadIdx.x == 0) record_error(st, kErrSlot, s);
    }
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      float acc = to_f(dx[t * N + j]);
      for (int k = 0; k < K; ++k) {
        const int32_t s = slot[t * K + k];
        if (s < 0 || s >= m) continue;
        acc += to_f(src[int64_t(s) * N + j]);
      }
      dx[t * N + j] = from_f<T>(acc);
    }
  }
}

void check_slot(const Tensor& slot, const char* op) {
  check_dev(slot, op);
  MOE_CHECK(slot.ndim() == 2 && slot.dtype() == DType::I32, op, ": slot must be (n, K) i32, got ",
            shape_str(slot.shape()), " ", dtype_name(slot.dtype()));
}

}  // namespace

void CudaBackend::gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) {
  check_dev(src, "gather_rows src");
  check_dev(rows, "gather_rows rows");
  check_dev(dst, "gather_rows dst");
  MOE_CHECK(rows.dtype() == DType::I32 && src.ndim() == 2 && dst.ndim() == 2, "gather_rows args");
  MOE_CHECK(src.dtype() == dst.dtype(), "gather_rows dtypes differ");
  const int64_t m = rows.numel(), n = src.dim(0), N = src.dim(1);
  check_shape(dst, {m, N}, "gather_rows dst");
  if (m == 0 || N == 0) return;
  dispatch_float(src.dtype(), "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    gather_rows_kernel<T><<<grid_for(m, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(src), dptr<int32_t>(rows), dptr<T>(dst), m, n, N, status_);
  });
  MOE_CUDA_LAUNCH_CHECK("gather_rows_kernel");
}

void CudaBackend::combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c,
                                  Tensor& out) {
  check_dev(y, "combine y");
  check_slot(slot, "combine_forward");
  check_dev(w, "combine w");
  check_dev(out, "combine out");
  MOE_CHECK(y.ndim() == 2, "combine y must be 2-D");
  const int64_t n = slot.dim(0), K = slot.dim(1), N = y.dim(1), m = y.dim(0);
  check_shape(w, {n, K}, "combine w");
  check_shape(out, {n, N}, "combine out");
  MOE_CHECK(w.dtype() == y.dtype() && out.dtype() == y.dtype(), "combine dtypes differ");
  if (n == 0 || N == 0) return;
  dispatch_float(y.dtype(), "combine_forward", [&](auto tag) {
    using T = decltype(tag);
    combine_forward_kernel<T><<<grid_for(n, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(y), dptr<int32_t>(slot), dptr<T>(w), float(c), dptr<T>(out), n, int(K), m, N,
        status_);
  });
  MOE_CUDA_LAUNCH_CHECK("combine_forward_kernel");
}

void CudaBackend::combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot,
                                   const Tensor& w, double c, Tensor& dy, Tensor& dw) {
  check_dev(dout, "combine dout");
  check_dev(y, "combine y");
  check_slot(slot, "combine_backward");
  check_dev(w, "combine w");
  check_dev(dw, "combine dw");
  MOE_CHECK(y.ndim() == 2, "combine y must be 2-D");
  const int64_t n = slot.dim(0), K = slot.dim(1), N = y.dim(1), m = y.dim(0);
  check_shape(dout, {n, N}, "combine dout");
  check_same(y, dy, "combine dy");
  check_shape(w, {n, K}, "combine w");
  check_shape(dw, {n, K}, "combine dw");
  MOE_CHECK(dout.dtype() == y.dtype() && w.dtype() == y.dtype() && dw.dtype() == y.dtype(),
            "combine dtypes differ");
  // Rows of dy that no slot names stay zero (slots are unique: each row is written once).
  if (dy.numel() > 0) MOE_CUDA_CHECK(cudaMemsetAsync(dy.raw(), 0, dy.nbytes(), stream_));
  if (n == 0) return;
  dispatch_float(y.dtype(), "combine_backward", [&](auto tag) {
    using T = decltype(tag);
    combine_backward_kernel<T><<<grid_for(n, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(dout), dptr<T>(y), dptr<int32_t>(slot), dptr<T>(w), float(c), dptr<T>(dy),
        dptr<T>(dw), n, int(K), m, N, status_);
  });
  MOE_CUDA_LAUNCH_CHECK("combine_backward_kernel");
}

void CudaBackend::scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) {
  check_dev(src, "scatter_add_slots src");
  check_slot(slot, "scatter_add_slots");
  check_dev(dx, "scatter_add_slots dx");
  MOE_CHECK(src.ndim() == 2, "scatter_add_slots src must be 2-D");
  const int64_t n = slot.dim(0), K = slot.dim(1), N = src.dim(1), m = src.dim(0);
  check_shape(dx, {n, N}, "scatter_add_slots dx");
  MOE_CHECK(dx.dtype() == src.dtype(), "scatter_add_slots dtypes differ");
  if (n == 0 || N == 0) return;
  dispatch_float(src.dtype(), "scatter_add_slots", [&](auto tag) {
    using T = decltype(tag);
    scatter_add_slots_kernel<T><<<grid_for(n, 1), row_threads(N), 0, stream_>>>(
        dptr<T>(src), dptr<int32_t>(slot), dptr<T>(dx), n, int(K), m, N, status_);
  });
  MOE_CUDA_LAUNCH_CHECK("scatter_add_slots_kernel");
}

}  // namespace moe::ops::gpu
