// The CUDA backend: every op of ops::Backend on one GPU, for f32 and bf16 tensors (bf16 storage,
// fp32 accumulation; the router and the optimizer's master weights in f32 only). All work goes
// to one stream owned by the backend; cuBLAS (fp32 compute, no TF32) runs the GEMMs.
//
// Device memory: the backend registers tensor.h's hooks with the stream-ordered allocator
// (cudaMallocAsync / cudaFreeAsync on the backend's stream), so temporaries freed while a kernel
// that uses them is still queued stay valid until it has run. Copies touching host memory
// synchronize the stream. One live CUDA backend per process (one rank per GPU) is supported:
// the hooks have no context argument, so they use the stream of the most recently created one.
//
// Index errors that the CPU ops throw on (token id outside the vocabulary, slot outside y, ...)
// cannot throw inside a kernel: the kernel skips the bad row and records the first error in a
// device status word, which is raised as moe::Error at the next synchronizing op
// (cross_entropy, sum_squares, all_finite, synchronize).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/core/rng.h"
#include "src/ops/backend.h"
#include "src/ops/cuda/cutlass/grouped_gemm_sm90.h"
#include "src/ops/cuda/grouped_gemm_route.h"

namespace moe::ops::gpu {

// Results and error flags that kernels leave in device memory for the host to read.
struct DeviceStatus {
  double result;        // a reduction's value (sum_squares, cross_entropy)
  int32_t error;        // first ErrorCode raised by a kernel since the last check, or 0
  int32_t error_value;  // the offending index
  int32_t flag;         // all_finite: set to 1 by any non-finite element
  int32_t pad;
};

enum ErrorCode : int32_t {
  kErrTokenId = 1,  // embedding id outside [0, V)
  kErrRow = 2,      // gather_rows row outside [0, n)
  kErrSlot = 3,     // combine / scatter slot outside [0, m)
  kErrTarget = 4,   // cross-entropy target outside [0, V)
};

// Which fused causal attention runs: Own, our FMA kernels (flash_attention.cu); Cudnn, cuDNN's
// SDPA through cudnn-frontend (cudnn/cudnn_attention.h), bf16 only, and an error when cuDNN is
// not built in, not loaded or declines the call; Auto, cuDNN where it takes the call, else Own.
// Tests and `moe bench attention` force each.
enum class AttentionImpl { Auto, Own, Cudnn };

class CudnnAttention;  // cudnn/cudnn_attention.h: only the files built with cuDNN see inside
struct CudnnAttentionDeleter {
  void operator()(CudnnAttention* p) const;
};

// One row-major GEMM of a grouped op: C (m x n) = alpha op(A) op(B) + beta C.
struct GemmProblem {
  bool ta, tb;
  int64_t m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  void* c;
  int64_t ldc;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  const char* name() const override { return "cuda"; }
  // Waits for the stream and raises any error a kernel recorded.
  void synchronize() override;

  void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta) override;
  void grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& segs,
                       Tensor& y, double alpha) override;
  void grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& segs,
                       Tensor& dx, double alpha, double beta) override;
  void grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& segs,
                       Tensor& dw, double alpha) override;

  void cast(const Tensor& src, Tensor& dst) override;
  void init_normal(Tensor& out, rng::Key key, int64_t per, const std::vector<uint32_t>& streams,
                   double std) override;
  void fill(Tensor& t, double value) override;
  void axpy(const Tensor& x, Tensor& y, double alpha) override;
  void scale(Tensor& t, double alpha) override;
  double sum_squares(const Tensor& t) override;
  bool all_finite(const Tensor& t) override;

  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double alpha,
                         bool accumulate) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable,
                          double alpha) override;

  void rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                       double eps) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd, const Tensor& dy,
                        Tensor& dx, Tensor& dgain) override;

  void attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T, int H,
                         double scale) override;
  void attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout, Tensor& dqkv,
                          int B, int T, int H, double scale) override;

  void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T, int H,
                               double scale) override;
  void flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                double scale) override;
  bool prefers_fused_attention() const override { return true; }

  void qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) override;
  void qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout, Tensor& dqkv,
                        int H) override;
  void rope_forward(Tensor& qkv, int T, int H, double base) override;
  void rope_backward(Tensor& dqkv, int T, int H, double base) override;

  void gelu_forward(const Tensor& h, Tensor& a, Gelu form) override;
  void gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) override;
  void swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) override;
  void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                       Tensor& du) override;

  void router_forward(const Tensor& logits, const Tensor& bias, const RouterOptions& opt,
                      Tensor& gates, Tensor& idx, Tensor& w, Tensor& stats) override;
  void router_backward(const Tensor& logits, const Tensor& gates, const Tensor& idx,
                       const Tensor& w, const Tensor& dw, const Tensor& aux_coef, double z_coef,
                       const RouterOptions& opt, Tensor& dlogits) override;

  void gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) override;
  void combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c,
                       Tensor& out) override;
  void combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot, const Tensor& w,
                        double c, Tensor& dy, Tensor& dw) override;
  void scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) override;

  double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                       double grad_scale) override;

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double wd, int64_t step) override;
  void sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                double wd) override;

  // ---- CUDA-specific ----
  // Philox init on the device, bit-identical to rng::normal on the host: element e of `out`
  // (f32 or bf16) = std * normal(key, e % per, stream0 + (e / per) * stream_step).
  void philox_normal(Tensor& out, rng::Key key, int64_t per, uint32_t stream0, uint32_t stream_step,
                     double std);
  // The raw Philox blocks philox((i, i >> 32, stream, 0x6E6F726D), key) for i < out.dim(0),
  // out (n, 4) i32 (for the bitwise CPU/GPU test).
  void philox_blocks(Tensor& out, rng::Key key, uint32_t stream);

  int device_index() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  // The grouped GEMMs' mode (grouped_gemm_route.h), and how many grouped calls (a TN call
  // counts once per wave) each path has run so far.
  void set_grouped_gemm_mode(GroupedGemmMode m) { grouped_mode_ = m; }
  GroupedGemmMode grouped_gemm_mode() const { return grouped_mode_; }
  int64_t grouped_path_calls(GroupedPath p) const { return path_calls_[int(p)]; }
  // Whether this build has the CUTLASS kernels and this GPU runs them (sm_90a code runs on
  // compute capability 9.0 only).
  bool cutlass_available() const;
  void set_attention_impl(AttentionImpl m) { attention_impl_ = m; }
  AttentionImpl attention_impl() const { return attention_impl_; }
  // True when this build has the cuDNN path and cuDNN loaded and gave a handle (tried once, on
  // the first call; without it one info line on stderr says why, and so does cudnn_why()).
  bool cudnn_attention_available();
  const std::string& cudnn_why() const { return cudnn_why_; }
  // The implementation (Own or Cudnn) that the latest flash_attention_forward / _backward ran.
  AttentionImpl last_attention_impl() const { return last_attention_; }

  // Used by the op files: the device status word, and a synchronizing read of it that throws
  // if a kernel recorded an error (`op` names the op in the message).
  DeviceStatus* status() const { return status_; }
  DeviceStatus fetch_status(const char* op);
  // Host-to-device copy through pinned staging memory: returns once the copy is queued on the
  // stream (the host source may be reused at once).
  void upload(void* dst, const void* src, size_t bytes) override;

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceStatus* status_ = nullptr;       // device
  DeviceStatus* host_status_ = nullptr;  // pinned host mirror
  // Pinned staging for upload(): a ring, so that consecutive uploads do not wait for each
  // other's copies (the "each grouped call waits for the previous one").
  static constexpr int kStagingSlots = 32;  // more than the uploads between two host waits
  struct StagingSlot {
    void* host = nullptr;  // pinned
    size_t bytes = 0;
    cudaEvent_t free = nullptr;  // recorded after the last copy out of host
  };
  StagingSlot staging_[kStagingSlots];
  int staging_next_ = 0;
  GroupedGemmMode grouped_mode_ = GroupedGemmMode::Auto;
  // (operand, result) dtype pairs for which cublasGemmGroupedBatchedEx returned NOT_SUPPORTED:
  // Auto sends those to the loop from then on, and only those.
  std::vector<std::pair<DType, DType>> cublas_refused_;
  int64_t path_calls_[kGroupedPaths] = {};
  int sm_count_ = 0, cc_major_ = 0, cc_minor_ = 0;
  AttentionImpl attention_impl_ = AttentionImpl::Auto;
  AttentionImpl last_attention_ = AttentionImpl::Own;
  // Created on the first call that may use cuDNN; stays null when cuDNN is unavailable.
  std::unique_ptr<CudnnAttention, CudnnAttentionDeleter> cudnn_;
  bool cudnn_tried_ = false;
  std::string cudnn_why_;  // why cuDNN attention is unavailable, once tried

  // Whether CUTLASS's kernels can run a call on these tensors: built in, an sm_90 GPU, widths
  // (in, out) multiples of 8 and 16-byte aligned tensors (TMA's rules). The dtypes and the
  // mode are route_grouped's to judge.
  bool cutlass_fits(const Tensor& act, const Tensor& other, const Tensor& out,
                    int64_t out_features, int64_t in_features) const;
  // The path of one grouped call (route_grouped with what this backend knows); throws for a
  // call that the forced mode cannot run.
  GroupedPath grouped_route(const char* op, bool weight_grad, const Tensor& act,
                            const Tensor& other, const Tensor& out, int64_t out_features,
                            int64_t in_features, bool independent, size_t problems) const;
  // One CUTLASS grouped call (see cutlass/grouped_gemm_sm90.h) over the non-empty segments,
  // which no two share an output of; grouped_route has chosen it.
  void run_cutlass(sm90::Form form, const Tensor& act, const Tensor& other, Tensor& out,
                   int64_t out_features, int64_t in_features, const std::vector<Segment>& segs,
                   float alpha, float beta);
  // Runs GEMM problems with one operand dtype (dt; C in dt_c), alpha and beta on a cuBLAS path:
  // one grouped call, or one by one in order (the loop).
  void run_gemm_problems(const std::vector<GemmProblem>& probs, DType dt, DType dt_c, float alpha,
                         float beta, GroupedPath path);

  // The fused attention of our own kernels (flash_attention.cu); flash_attention_forward /
  // _backward (fused_attention.cpp) check the tensors and choose between these and cuDNN.
  void own_flash_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T, int H,
                         double scale);
  void own_flash_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                          const Tensor& dout, Tensor& dqkv, int B, int T, int H, double scale);
  // The cuDNN path when the mode allows it, cuDNN is available and the call is one it takes
  // (`declined`: why not, from cudnn/sdpa_support.h, or null); null means our kernels. Throws
  // in Cudnn mode instead of returning null.
  CudnnAttention* cudnn_for(const char* declined, const char* op);
  template <class Run>
  bool ran_on_cudnn(const char* declined, const char* op, int B, int T, int H, int64_t D, Run run);
};

// Sets a backend's grouped-GEMM mode for a scope and restores it on the way out, exceptions
// included (the tests and `moe bench gemm` force each path); does nothing to a CPU backend.
class GroupedModeScope {
 public:
  GroupedModeScope(Backend& be, GroupedGemmMode m) : g_(dynamic_cast<CudaBackend*>(&be)) {
    if (!g_) return;
    old_ = g_->grouped_gemm_mode();
    g_->set_grouped_gemm_mode(m);
  }
  ~GroupedModeScope() {
    if (g_) g_->set_grouped_gemm_mode(old_);
  }
  GroupedModeScope(const GroupedModeScope&) = delete;
  GroupedModeScope& operator=(const GroupedModeScope&) = delete;

 private:
  CudaBackend* g_;
  GroupedGemmMode old_ = GroupedGemmMode::Auto;
};

}  // namespace moe::ops::gpu
