// CUDA optimizer updates on f32 master weights: AdamW (decoupled weight decay) and SGD with
// momentum, elementwise with the CPU's float arithmetic. The gradient may be f32 or bf16 (a bf16
// model's gradients update its f32 master copy); parameters and state are f32.
#include <cmath>

#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

constexpr int kThreads = 256;

template <class G>
__global__ void adamw_kernel(float* p, const G* g, float* m, float* v, int64_t n, float b1,
                             float b2, float omb1, float omb2, float ib1, float ib2, float eps,
                             float lr, float wd) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float gi = to_f(g[i]);
    const float mi = b1 * m[i] + omb1 * gi;
    const float vi = b2 * v[i] + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mh = mi * ib1, vh = vi * ib2;
    p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
  }
}

template <class G>
__global__ void sgd_kernel(float* p, const G* g, float* buf, int64_t n, float mu, float lr,
                           float wd) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float b = mu * buf[i] + to_f(g[i]);
    buf[i] = b;
    p[i] -= lr * (b + wd * p[i]);
  }
}

void check_master(const Tensor& p, const Tensor& g, const char* op) {
  check_dev(p, op);
  check_dev(g, op);
  check_dtype(p, DType::F32, "optimizer parameters (f32 master weights)");
  MOE_CHECK(g.shape() == p.shape(), op, " grad ", shape_str(g.shape()), " vs parameter ",
            shape_str(p.shape()));
  check_float(g, op);
}

}  // namespace

void CudaBackend::adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr,
                             double beta1, double beta2, double eps, double wd, int64_t step) {
  check_master(p, g, "adamw");
  check_same(p, m, "adamw m");
  check_same(p, v, "adamw v");
  MOE_CHECK(step >= 1, "adamw step counts from 1");
  const int64_t n = p.numel();
  if (n == 0) return;
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  const float b1 = float(beta1), b2 = float(beta2);
  dispatch_float(g.dtype(), "adamw", [&](auto tag) {
    using G = decltype(tag);
    adamw_kernel<G><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
        dptr<float>(p), dptr<G>(g), dptr<float>(m), dptr<float>(v), n, b1, b2, 1.0f - b1, 1.0f - b2,
        float(1 / bc1), float(1 / bc2), float(eps), float(lr), float(wd));
  });
  MOE_CUDA_LAUNCH_CHECK("adamw_kernel");
}

void CudaBackend::sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                           double wd) {
  check_master(p, g, "sgd");
  check_same(p, buf, "sgd momentum buffer");
  const int64_t n = p.numel();
  if (n == 0) return;
  dispatch_float(g.dtype(), "sgd", [&](auto tag) {
    using G = decltype(tag);
    sgd_kernel<G><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
        dptr<float>(p), dptr<G>(g), dptr<float>(buf), n, float(momentum), float(lr), float(wd));
  });
  MOE_CUDA_LAUNCH_CHECK("sgd_kernel");
}

}  // namespace moe::ops::gpu
