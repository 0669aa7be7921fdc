// CUDA dtype conversion (f32 <-> bf16; rounding to nearest even as the CPU's f32_to_bf16) and
// the Backend's init_normal on top of the Philox kernel (rng_init.cu).
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kThreads = 256;

template <class S, class D>
__global__ void cast_kernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) dst[i] = from_f<D>(to_f(src[i]));
}

}  // namespace

void CudaBackend::cast(const Tensor& src, Tensor& dst) {
  check_dev(src, "cast src");
  check_dev(dst, "cast dst");
  check_float(src, "cast src");
  check_float(dst, "cast dst");
  MOE_CHECK(src.numel() == dst.numel(), "cast ", shape_str(src.shape()), " into ",
            shape_str(dst.shape()));
  const int64_t n = src.numel();
  if (n == 0 || src.raw() == dst.raw()) return;
  if (src.dtype() == dst.dtype()) {
    MOE_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice,
                                   stream_));
    return;
  }
  dispatch_float(src.dtype(), "cast", [&](auto s) {
    dispatch_float(dst.dtype(), "cast", [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      cast_kernel<S, D><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<S>(src), dptr<D>(dst), n);
    });
  });
  MOE_CUDA_LAUNCH_CHECK("cast_kernel");
}

void CudaBackend::init_normal(Tensor& out, rng::Key key, int64_t per,
                              const std::vector<uint32_t>& streams, double std) {
  check_dev(out, "init_normal out");
  MOE_CHECK(per >= 1 && out.numel() == per * int64_t(streams.size()), "init_normal: ",
            out.numel(), " elements are not ", streams.size(), " units of ", per);
  // One launch when the streams step evenly (dense: one unit; experts: 1 + global index, or a
  // constant stream for tied experts), else one launch per unit.
  const uint32_t s0 = streams.empty() ? 0 : streams[0];
  const uint32_t step = streams.size() > 1 ? streams[1] - s0 : 0;
  bool even = true;
  for (size_t u = 0; u < streams.size(); ++u) even = even && streams[u] == s0 + uint32_t(u) * step;
  if (even) {
    philox_normal(out, key, per, s0, step, std);
    return;
  }
  for (size_t u = 0; u < streams.size(); ++u) {
    Tensor unit = out.view({out.numel()}).rows(int64_t(u) * per, int64_t(u + 1) * per);
    philox_normal(unit, key, per, streams[u], 0, std);
  }
}

}  // namespace moe::ops::gpu
