// CUDA softmax cross-entropy fused with its gradient (llm.c's classifier pattern): one block per
// row computes max, sum of exp, the row's loss and dlogits = grad_scale (softmax - onehot) in
// place if asked. The row losses are summed in double by the deterministic two-pass reduction,
// so the returned total does not change from run to run.
#include "src/ops/cuda/reduce.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kThreads = 256;

// loss[i] = logsumexp(x[i]) - x[i, target]. d may alias x: every thread reads the target logit
// before the block's first barrier, and each element is read and then written by one thread.
template <class T>
__global__ void cross_entropy_kernel(const T* x, const int32_t* targets, T* d, double* loss,
                                     int64_t n, int64_t V, float gs, DeviceStatus* st) {
  __shared__ float sh[32];
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* row = x + i * V;
    T* drow = d + i * V;
    const int32_t tg = targets[i];
    if (tg < 0 || tg >= V) {  // uniform over the block
      if (threadIdx.x == 0) {
        record_error(st, kErrTarget, tg);
        loss[i] = 0;
      }
      continue;
    }
    const float target = to_f(row[tg]);
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, to_f(row[j]));
    mx = block_max(mx, sh);
    float sum = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += expf(to_f(row[j]) - mx);
    sum = block_sum(sum, sh);
    const float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      float v = expf(to_f(row[j]) - mx) * inv * gs;
      if (j == tg) v -= gs;
      drow[j] = from_f<T>(v);
    }
    if (threadIdx.x == 0) loss[i] = double((mx + logf(sum)) - target);
    __syncthreads();  // the next row's block_max reuses sh
  }
}

}  // namespace

double CudaBackend::cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                                  double grad_scale) {
  check_dev(logits, "cross_entropy logits");
  check_dev(targets, "cross_entropy targets");
  MOE_CHECK(logits.ndim() == 2 && targets.dtype() == DType::I32, "cross_entropy args");
  const int64_t n = logits.dim(0), V = logits.dim(1);
  MOE_CHECK(targets.numel() == n, "cross_entropy targets ", targets.numel(), " for ", n, " rows");
  check_same(logits, dlogits, "cross_entropy dlogits");
  MOE_CHECK(n == 0 || V > 0, "cross_entropy over an empty vocabulary");
  Tensor loss = scratch(std::max<int64_t>(n, 1), DType::F64);
  if (n > 0) {
    dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      cross_entropy_kernel<T><<<grid_for(n, 1), kThreads, 0, stream_>>>(
          dptr<T>(logits), dptr<int32_t>(targets), dptr<T>(dlogits), dptr<double>(loss), n, V,
          float(grad_scale), status_);
    });
    MOE_CUDA_LAUNCH_CHECK("cross_entropy_kernel");
  }
  launch_sum<double, false>(dptr<double>(loss), n, &status_->result, stream_);
  return fetch_status("cross_entropy").result;
}

}  // namespace moe::ops::gpu
