// Philox initialization on the device with src/core/rng.h's __host__ __device__ functions, so a
// parameter initialized here is bit-identical to the host's rng::normal (see rng.h: the normal
// is computed in double on both sides before the cast to float).
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kThreads = 256;

// out[e] = std * normal(key, e % per, stream0 + (e / per) * step), the host init's formula
// (double product, then the cast to the storage type).
template <class T>
__global__ void philox_normal_kernel(T* out, int64_t n, int64_t per, rng::Key key, uint32_t stream0,
                                     uint32_t step, double std_dev) {
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t u = e / per, i = e % per;
    const uint32_t stream = stream0 + uint32_t(u) * step;
    const double v = std_dev * double(rng::normal(key, uint64_t(i), stream));
    out[e] = from_f<T>(float(v));
  }
}

__global__ void philox_blocks_kernel(uint32_t* out, int64_t n, rng::Key key, uint32_t stream) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const rng::Block b = rng::philox(
        rng::Counter{uint32_t(i), uint32_t(uint64_t(i) >> 32), stream, 0x6E6F726Du}, key);
    for (int w = 0; w < 4; ++w) out[4 * i + w] = b.v[w];
  }
}

}  // namespace

void CudaBackend::philox_normal(Tensor& out, rng::Key key, int64_t per, uint32_t stream0,
                                uint32_t stream_step, double std) {
  check_dev(out, "philox_normal out");
  MOE_CHECK(per >= 1 && out.numel() % per == 0, "philox_normal: ", out.numel(),
            " elements are not whole units of ", per);
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype(), "philox_normal", [&](auto tag) {
    using T = decltype(tag);
    philox_normal_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
        dptr<T>(out), n, per, key, stream0, stream_step, std);
  });
  MOE_CUDA_LAUNCH_CHECK("philox_normal_kernel");
}

void CudaBackend::philox_blocks(Tensor& out, rng::Key key, uint32_t stream) {
  check_dev(out, "philox_blocks out");
  MOE_CHECK(out.ndim() == 2 && out.dim(1) == 4 && out.dtype() == DType::I32,
            "philox_blocks out must be (n, 4) i32");
  const int64_t n = out.dim(0);
  if (n == 0) return;
  philox_blocks_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
      static_cast<uint32_t*>(out.raw()), n, key, stream);
  MOE_CUDA_LAUNCH_CHECK("philox_blocks_kernel");
}

}  // namespace moe::ops::gpu
