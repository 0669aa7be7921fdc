// The backend's fused causal attention: cuDNN's SDPA (cudnn/cudnn_attention.h) or our own
// kernels (flash_attention.cu), chosen per call by the AttentionImpl mode (cuda_backend.h).
// Auto takes cuDNN where this build has it, it loaded, and it takes the call: bf16, a head of
// a multiple of 8 up to 128, aligned tensors (cudnn/sdpa_support.h), and an engine for the
// shape; everything else, f32 first of all, runs our kernels. Both store the same lse (the
// natural-log log-sum-exp of the scaled logits), so a backward may run on the other path.
#include <cstdio>
#include <exception>
#include <string>

#include "src/ops/cuda/cuda_backend.h"
#include "src/ops/cuda/cuda_util.h"
#include "src/ops/cuda/cudnn/sdpa_support.h"
#ifdef MOE_HAVE_CUDNN
#include "src/ops/cuda/cudnn/cudnn_attention.h"
#include "src/ops/cuda/cudnn/cudnn_library.h"
#endif

namespace moe::ops::gpu {
namespace {

// The checks both paths rely on, made once per call before either runs (the cuDNN path hands
// raw pointers to cuDNN; our kernels add only their own limits): devices, dtypes and shapes.
// Returns N.
int64_t check_fused(const Tensor& qkv, const Tensor& out, const Tensor& lse, int B, int T, int H,
                    const char* op) {
  check_dev(qkv, op);
  check_dev(out, op);
  check_dev(lse, op);
  check_float(qkv, op);
  MOE_CHECK(qkv.ndim() == 2 && qkv.dim(0) == int64_t(B) * T && qkv.dim(1) % 3 == 0, op,
            ": qkv shape ", shape_str(qkv.shape()));
  const int64_t N = qkv.dim(1) / 3;
  MOE_CHECK(H > 0 && N % H == 0, op, ": width ", N, " not divisible by ", H, " heads");
  check_shape(out, {int64_t(B) * T, N}, "flash attention out");
  MOE_CHECK(out.dtype() == qkv.dtype(), op, ": out dtype ", dtype_name(out.dtype()), ", qkv ",
            dtype_name(qkv.dtype()));
  check_shape(lse, {B, H, T}, "flash attention lse");
  check_dtype(lse, DType::F32, "flash attention lse");
  return N;
}

}  // namespace

void CudnnAttentionDeleter::operator()(CudnnAttention* p) const {
#ifdef MOE_HAVE_CUDNN
  delete p;
#else
  (void)p;  // never made without cuDNN
#endif
}

bool CudaBackend::cudnn_attention_available() {
#ifdef MOE_HAVE_CUDNN
  if (!cudnn_tried_) {
    cudnn_tried_ = true;
    std::string why;
    if (load_cudnn(&why)) {
      try {
        cudnn_.reset(new CudnnAttention(stream_));
      } catch (const std::exception& e) {  // moe::Error, or the frontend's for a missing symbol
        why = e.what();
      }
    }
    if (!cudnn_) {
      cudnn_why_ = why;
      std::fprintf(stderr, "moe: info: cuDNN attention unavailable (%s); using our own kernels\n",
                   why.c_str());
    }
  }
  return cudnn_ != nullptr;
#else
  cudnn_why_ = "this build has no cuDNN path";
  return false;
#endif
}

CudnnAttention* CudaBackend::cudnn_for(const char* declined, const char* op) {
  if (attention_impl_ == AttentionImpl::Own) return nullptr;
  const bool forced = attention_impl_ == AttentionImpl::Cudnn;
#ifdef MOE_HAVE_CUDNN
  // Auto asks for cuDNN only for calls it could take, so f32 runs never load it.
  if (declined && !forced) return nullptr;
  if (!cudnn_attention_available()) {
    MOE_CHECK(!forced, op, ": cuDNN attention was asked for but is unavailable");
    return nullptr;
  }
  MOE_CHECK(!declined, op, ": cuDNN attention was asked for but declines this call: ", declined);
  return cudnn_.get();
#else
  MOE_CHECK(!forced, op, ": cuDNN attention was asked for, but this build has no cuDNN path");
  (void)declined;
  return nullptr;
#endif
}

// Runs `run(cudnn, &why)` (a cuDNN forward or backward) when cudnn_for gives the cuDNN path;
// true when cuDNN computed the result. A shape for which cuDNN has no engine falls back to our
// kernels, except in Cudnn mode, where it is an error.
template <class Run>
bool CudaBackend::ran_on_cudnn(const char* declined, const char* op, int B, int T, int H,
                               int64_t D, Run run) {
  CudnnAttention* c = cudnn_for(declined, op);
#ifdef MOE_HAVE_CUDNN
  if (c) {
    std::string why;
    if (run(*c, &why)) {
      last_attention_ = AttentionImpl::Cudnn;
      return true;
    }
    MOE_CHECK(attention_impl_ != AttentionImpl::Cudnn, op, ": cuDNN has no engine for B=", B,
              " T=", T, " H=", H, " D=", D, ": ", why);
  }
#else
  (void)c, (void)B, (void)T, (void)H, (void)D, (void)run;
#endif
  return false;
}

void CudaBackend::flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B,
                                          int T, int H, double scale) {
  const char* op = "flash_attention_forward";
  const int64_t N = check_fused(qkv, out, lse, B, T, H, op);
  const char* declined =
      sdpa_declined(qkv.dtype(), B, T, H, N / H, {qkv.raw(), out.raw(), lse.raw()});
  if (ran_on_cudnn(declined, op, B, T, H, N / H, [&](auto& c, std::string* why) {
        return c.forward(qkv.raw(), out.raw(), static_cast<float*>(lse.raw()), B, T, H,
                         int(N / H), float(scale), why);
      }))
    return;
  own_flash_forward(qkv, out, lse, B, T, H, scale);
  last_attention_ = AttentionImpl::Own;
}

void CudaBackend::flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                           const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                           double scale) {
  const char* op = "flash_attention_backward";
  const int64_t N = check_fused(qkv, out, lse, B, T, H, op);
  check_same(qkv, dqkv, "flash attention dqkv");
  check_same(out, dout, "flash attention dout");
  const char* declined = sdpa_declined(qkv.dtype(), B, T, H, N / H,
                                       {qkv.raw(), out.raw(), lse.raw(), dout.raw(), dqkv.raw()});
  if (ran_on_cudnn(declined, op, B, T, H, N / H, [&](auto& c, std::string* why) {
        return c.backward(qkv.raw(), out.raw(), static_cast<const float*>(lse.raw()), dout.raw(),
                          dqkv.raw(), B, T, H, int(N / H), float(scale), why);
      }))
    return;
  own_flash_backward(qkv, out, lse, dout, dqkv, B, T, H, scale);
  last_attention_ = AttentionImpl::Own;
}

}  // namespace moe::ops::gpu
