// CUDA embedding lookup and its backward.
//
// The backward, dtable[ids[i]] += alpha dout[i], is made deterministic without atomics: the
// (id, position) pairs are sorted by id with CUB's radix sort, which is stable, so each id's
// positions stay in increasing order; then one block owns each run of equal ids and adds its rows
// into dtable in that order, exactly the CPU's summation order. Cost: a sort of n keys per call
// (microseconds at training sizes), and a frequent id makes its block walk its rows one by one.
#include <cub/device/device_radix_sort.cuh>

#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

// One block per row i (grid-stride over rows), threads over the N columns.
template <class T>
__global__ void embedding_forward_kernel(const int32_t* ids, const T* table, T* out, int64_t n,
                                         int64_t V, int64_t N, float alpha, bool accumulate,
                                         DeviceStatus* st) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    if (id < 0 || id >= V) {
      if (threadIdx.x == 0) record_error(st, kErrTokenId, id);
      continue;
    }
    const T* row = table + int64_t(id) * N;
    T* dst = out + i * N;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const float v = alpha * to_f(row[j]);
      dst[j] = from_f<T>(accumulate ? to_f(dst[j]) + v : v);
    }
  }
}

// keys[i] = ids[i] (unsigned, so the radix sort needs no sign handling), or V for an id outside [0,
// V) (recorded, then skipped); vals[i] = i.
__global__ void embedding_keys_kernel(const int32_t* ids, int64_t n, int32_t V, uint32_t* keys,
                                      int32_t* vals, DeviceStatus* st) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int32_t id = ids[i];
    if (id < 0 || id >= V) {
      record_error(st, kErrTokenId, id);
      id = V;
    }
    keys[i] = uint32_t(id);
    vals[i] = int32_t(i);
  }
}

// Block b takes sorted position k = b if a run of equal ids starts there, and adds that run's
// rows dout[pos] into dtable[id] in increasing pos order.
template <class T>
__global__ void embedding_backward_kernel(const uint32_t* keys, const int32_t* pos, const T* dout,
                                          T* dtable, int64_t n, uint32_t V, int64_t N,
                                          float alpha) {
  for (int64_t k = blockIdx.x; k < n; k += gridDim.x) {
    const uint32_t id = keys[k];
    if (id == V || (k > 0 && keys[k - 1] == id)) continue;
    T* row = dtable + int64_t(id) * N;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      float acc = to_f(row[j]);
      for (int64_t r = k; r < n && keys[r] == id; ++r)
        acc += alpha * to_f(dout[int64_t(pos[r]) * N + j]);
      row[j] = from_f<T>(acc);
    }
  }
}

}  // namespace

void CudaBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out,
                                    double alpha, bool accumulate) {
  check_dev(ids, "embedding ids");
  check_dev(table, "embedding table");
  check_dev(out, "embedding out");
  MOE_CHECK(ids.dtype() == DType::I32 && table.ndim() == 2 && out.ndim() == 2, "embedding args");
  MOE_CHECK(table.dtype() == out.dtype(), "embedding table ", dtype_name(table.dtype()), " vs out ",
            dtype_name(out.dtype()));
  const int64_t n = ids.numel(), V = table.dim(0), N = table.dim(1);
  check_shape(out, {n, N}, "embedding out");
  if (n == 0 || N == 0) return;
  const int threads = row_threads(N);
  dispatch_float(table.dtype(), "embedding_forward", [&](auto tag) {
    using T = decltype(tag);
    embedding_forward_kernel<T>
        <<<grid_for(n, 1), threads, 0, stream_>>>(dptr<int32_t>(ids), dptr<T>(table), dptr<T>(out),
                                                  n, V, N, float(alpha), accumulate, status_);
  });
  MOE_CUDA_LAUNCH_CHECK("embedding_forward_kernel");
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable,
                                     double alpha) {
  check_dev(ids, "embedding ids");
  check_dev(dout, "embedding dout");
  check_dev(dtable, "embedding dtable");
  MOE_CHECK(ids.dtype() == DType::I32 && dtable.ndim() == 2, "embedding_backward args");
  MOE_CHECK(dout.dtype() == dtable.dtype(), "embedding dout ", dtype_name(dout.dtype()),
            " vs dtable ", dtype_name(dtable.dtype()));
  const int64_t n = ids.numel(), V = dtable.dim(0), N = dtable.dim(1);
  check_shape(dout, {n, N}, "embedding dout");
  if (n == 0 || N == 0) return;
  const int ni = as_int(n, "embedding tokens");
  const int32_t Vi = as_int(V, "embedding vocabulary");
  MOE_CHECK(Vi < INT32_MAX, "embedding vocabulary too large");
  // Sort (key = id, value = position) over the bits that ids up to V (the sentinel) need.
  int end_bit = 1;
  while (end_bit < 32 && (int64_t(1) << end_bit) <= V) ++end_bit;
  Tensor keys_in = scratch(n, DType::I32), keys = scratch(n, DType::I32);
  Tensor pos_in = scratch(n, DType::I32), pos = scratch(n, DType::I32);
  embedding_keys_kernel<<<grid_for(n, 256), 256, 0, stream_>>>(
      dptr<int32_t>(ids), n, Vi, dptr<uint32_t>(keys_in), dptr<int32_t>(pos_in), status_);
  MOE_CUDA_LAUNCH_CHECK("embedding_keys_kernel");
  size_t temp_bytes = 0;
  MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, dptr<uint32_t>(keys_in),
                                                 dptr<uint32_t>(keys), dptr<int32_t>(pos_in),
                                                 dptr<int32_t>(pos), ni, 0, end_bit, stream_));
  Tensor temp = scratch(int64_t(temp_bytes / 4 + 1), DType::I32);
  MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw(), temp_bytes, dptr<uint32_t>(keys_in),
                                                 dptr<uint32_t>(keys), dptr<int32_t>(pos_in),
                                                 dptr<int32_t>(pos), ni, 0, end_bit, stream_));
  const int threads = row_threads(N);
  dispatch_float(dtable.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    embedding_backward_kernel<T><<<grid_for(n, 1), threads, 0, stream_>>>(
        dptr<uint32_t>(keys), dptr<int32_t>(pos), dptr<T>(dout), dptr<T>(dtable), n, uint32_t(Vi),
        N, float(alpha));
  });
  MOE_CUDA_LAUNCH_CHECK("embedding_backward_kernel");
}

}  // namespace moe::ops::gpu
