// CUDA expert and dense-MLP activations: GELU (exact erf form and tanh form) and SwiGLU, forward
// and backward. Elementwise, in float, with the CPU reference's formulas; normcdff / tanhf / expf
// are CUDA's accurate versions (no fast-math), within a few ulp, while the CPU's float erf is a
// polynomial within 4.2e-7 of the exact GELU (src/ops/cpu/activation.cpp).
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {
namespace {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;
constexpr float kGelu3A = float(3 * 0.044715);
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // the normal density at 0
constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// normcdff(x) = Phi(x), accurate in relative terms also far below 0 (no 1 + erf cancellation).
template <class T>
__global__ void gelu_erf_forward_kernel(const T* h, T* a, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(h[i]);
    a[i] = from_f<T>(x * normcdff(x));
  }
}

template <class T>
__global__ void gelu_erf_backward_kernel(const T* h, const T* da, T* dh, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(h[i]);
    const float d = normcdff(x) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    dh[i] = from_f<T>(to_f(da[i]) * d);
  }
}

template <class T>
__global__ void gelu_tanh_forward_kernel(const T* h, T* a, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(h[i]);
    const float u = kGeluC * (x + kGeluA * x * x * x);
    a[i] = from_f<T>(0.5f * x * (1.0f + tanhf(u)));
  }
}

template <class T>
__global__ void gelu_tanh_backward_kernel(const T* h, const T* da, T* dh, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(h[i]), x2 = x * x;
    const float th = tanhf(kGeluC * (x + kGeluA * x2 * x));
    const float sech2 = 1.0f - th * th;
    const float d = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluC * (1.0f + kGelu3A * x2);
    dh[i] = from_f<T>(to_f(da[i]) * d);
  }
}

template <class T>
__global__ void swiglu_forward_kernel(const T* g, const T* u, T* a, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(g[i]);
    a[i] = from_f<T>(x * sigmoid(x) * to_f(u[i]));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(const T* g, const T* u, const T* da, T* dg, T* du,
                                       int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float x = to_f(g[i]), s = sigmoid(x), d = to_f(da[i]), uu = to_f(u[i]);
    du[i] = from_f<T>(d * x * s);
    dg[i] = from_f<T>(d * uu * s * (1.0f + x * (1.0f - s)));
  }
}

}  // namespace

void CudaBackend::gelu_forward(const Tensor& h, Tensor& a, Gelu form) {
  check_dev(h, "gelu h");
  check_same(h, a, "gelu a");
  const int64_t n = h.numel();
  if (n == 0) return;
  dispatch_float(h.dtype(), "gelu_forward", [&](auto tag) {
    using T = decltype(tag);
    auto* kernel = form == Gelu::Erf ? gelu_erf_forward_kernel<T> : gelu_tanh_forward_kernel<T>;
    kernel<<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(h), dptr<T>(a), n);
  });
  MOE_CUDA_LAUNCH_CHECK("gelu_forward_kernel");
}

void CudaBackend::gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) {
  check_dev(h, "gelu h");
  check_same(h, da, "gelu da");
  check_same(h, dh, "gelu dh");
  const int64_t n = h.numel();
  if (n == 0) return;
  dispatch_float(h.dtype(), "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    auto* kernel = form == Gelu::Erf ? gelu_erf_backward_kernel<T> : gelu_tanh_backward_kernel<T>;
    kernel<<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(h), dptr<T>(da), dptr<T>(dh), n);
  });
  MOE_CUDA_LAUNCH_CHECK("gelu_backward_kernel");
}

void CudaBackend::swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) {
  check_dev(g, "swiglu g");
  check_same(g, u, "swiglu u");
  check_same(g, a, "swiglu a");
  const int64_t n = g.numel();
  if (n == 0) return;
  dispatch_float(g.dtype(), "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    swiglu_forward_kernel<T>
        <<<grid_for(n, kThreads), kThreads, 0, stream_>>>(dptr<T>(g), dptr<T>(u), dptr<T>(a), n);
  });
  MOE_CUDA_LAUNCH_CHECK("swiglu_forward_kernel");
}

void CudaBackend::swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                                  Tensor& du) {
  check_dev(g, "swiglu g");
  check_same(g, u, "swiglu u");
  check_same(g, da, "swiglu da");
  check_same(g, dg, "swiglu dg");
  check_same(g, du, "swiglu du");
  const int64_t n = g.numel();
  if (n == 0) return;
  dispatch_float(g.dtype(), "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    swiglu_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_>>>(
        dptr<T>(g), dptr<T>(u), dptr<T>(da), dptr<T>(dg), dptr<T>(du), n);
  });
  MOE_CUDA_LAUNCH_CHECK("swiglu_backward_kernel");
}

}  // namespace moe::ops::gpu
