// The compute backend: a table of operations the model is written against (ggml's pattern).
// src/ops/cpu is the reference (plain C++ and BLAS, f32 and f64; bf16 tensors are stored as
// bf16 and computed in f32); src/ops/cuda is the GPU version (f32 and bf16). tests/ops compares
// every op of a backend with the CPU one.
//
// Mixed precision (train.dtype = "bf16"): operands of one op share a dtype, except that the
// GEMMs (gemm, grouped_gemm_tn) may write an f32 C from bf16 A and B (fp32 accumulation, f32
// parameter gradients and logits); everything else crosses dtypes through cast().
//
// Conventions: tensors are row-major; n = tokens, N = width, F = hidden width, V = vocab,
// M = experts, K = active experts, m = routed rows. Ops that produce a parameter gradient add
// into it (grads are zeroed once per step); ops that produce an activation gradient write it
// unless their comment says "adds".
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "src/core/rng.h"
#include "src/core/tensor.h"

namespace moe::ops {

enum class Gate { Softmax, Sigmoid };
// GELU's two forms: Erf is the exact x * Phi(x) (PyTorch's nn.GELU(), what the MSSP paper's
// experts and dense MLPs compute); Tanh is GPT-2's approximation, which moe.activation = "gelu"
// meant before 2026-12 and "gelu_tanh" names now.
enum class Gelu { Erf, Tanh };

// One run of rows that shares a weight matrix: rows [begin, end) use W[group].
struct Segment {
  int64_t begin = 0, end = 0;
  int group = 0;
};

struct RouterOptions {
  Gate gate = Gate::Softmax;
  int top_k = 1;
  bool renormalize = true;  // w_i = g_i / sum over the top-K of g_j
  bool use_bias = false;    // select on g + b (aux-loss-free balancing); b never enters w
  // Switch aux-loss probabilities: the chosen experts' gates, zero elsewhere (the MSSP paper's
  // code); otherwise the gate distribution over every expert (softmax, or sigmoids / their sum).
  bool aux_selected = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;
  // Waits for queued device work (no-op on the CPU).
  virtual void synchronize() {}
  // Host-to-device copy into dst (memory of this backend's device) that returns once queued:
  // the host source may be reused at once, and the host does not wait for the device.
  virtual void upload(void* dst, const void* src, size_t bytes) {
    copy_bytes(dst, device(), src, Device::CPU, bytes);
  }

  // ---- linear algebra ----
  // c = alpha * op(a) op(b) + beta * c; 2-D tensors, op = transpose when the flag is set.
  virtual void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                    double alpha, double beta) = 0;
  // Per segment s: y[s] = alpha * x[s] W[g]^T.  x (m, in), W (G, out, in), y (m, out).
  virtual void grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& segs,
                               Tensor& y, double alpha) = 0;
  // Per segment s: dx[s] = alpha * dy[s] W[g] (+ beta * dx[s]).  dy (m, out), dx (m, in).
  virtual void grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& segs,
                               Tensor& dx, double alpha, double beta) = 0;
  // Per segment s: dW[g] += alpha * dy[s]^T x[s].  dW (G, out, in).
  virtual void grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& segs,
                               Tensor& dw, double alpha) = 0;

  // ---- elementwise ----
  // dst = src converted to dst's dtype (f32, f64, bf16; rounding to nearest even). Same numel.
  virtual void cast(const Tensor& src, Tensor& dst) = 0;
  // out[u * per + i] = std * normal(key, i, streams[u]) for units u (rng.h's Philox normal, in
  // double, then rounded to out's dtype): parameter init, bit-identical on every backend.
  virtual void init_normal(Tensor& out, rng::Key key, int64_t per,
                           const std::vector<uint32_t>& streams, double std) = 0;
  virtual void fill(Tensor& t, double value) = 0;
  virtual void axpy(const Tensor& x, Tensor& y, double alpha) = 0;  // y += alpha * x
  virtual void scale(Tensor& t, double alpha) = 0;
  virtual double sum_squares(const Tensor& t) = 0;       // accumulated in double
  virtual bool all_finite(const Tensor& t) = 0;

  // ---- embeddings ----
  // out[i] (+)= alpha * table[ids[i]].  ids (n) i32, table (V, N), out (n, N).
  virtual void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double alpha,
                                 bool accumulate) = 0;
  // dtable[ids[i]] += alpha * dout[i].
  virtual void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable,
                                  double alpha) = 0;

  // ---- RMSNorm: y = x / rms(x) * gain ----
  // x, y (n, N); gain (N); rstd (n) saved for backward.
  virtual void rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                               double eps) = 0;
  // Adds into dx; adds into dgain.
  virtual void rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd,
                                const Tensor& dy, Tensor& dx, Tensor& dgain) = 0;

  // ---- causal multi-head attention ----
  // qkv (B*T, 3N) laid out [q | k | v], heads of D = N/H contiguous inside each;
  // out (B*T, N); probs (B, H, T, T) saved for backward; logits scaled by `scale`.
  virtual void attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T,
                                 int H, double scale) = 0;
  // Writes dqkv (B*T, 3N).
  virtual void attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout,
                                  Tensor& dqkv, int B, int T, int H, double scale) = 0;

  // ---- fused causal attention (never stores T x T) ----
  // Same layout and result as attention_forward, but saves lse (B, H, T) (f32, or f64 with f64
  // inputs: the log-sum-exp of each query row's scaled logits) instead of the probabilities.
  virtual void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T,
                                       int H, double scale) = 0;
  // Writes dqkv (B*T, 3N), recomputing the probabilities from qkv and lse.
  virtual void flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                        const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                        double scale) = 0;
  // Whether the model should use the fused attention (the CUDA backend: its kernels are the
  // fast path there; the CPU keeps its BLAS attention with stored probabilities, which is
  // faster on a CPU at the sequence lengths it trains).
  virtual bool prefers_fused_attention() const { return false; }

  // ---- q and k before attention (the MSSP paper's QK-norm and RoPE) ----
  // Both act on the q and k thirds of qkv (B*T, 3N), per head of D = N/H, and leave v alone;
  // row r of qkv is position r % T of its sequence.
  // QK-norm: RMSNorm without a gain, y = x / sqrt(mean(x^2) + eps) per head. out (B*T, 3N) gets
  // the normed q and k and a copy of v; rstd (B*T, 2H) (f32, or f64 for f64 qkv): q heads, then
  // k heads.
  virtual void qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H,
                               double eps) = 0;
  // dqkv = d/dqkv of the norm applied to dout (v third copied). dqkv may alias dout.
  virtual void qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout,
                                Tensor& dqkv, int H) = 0;
  // RoPE, in place, half-split pairs (d, d + D/2) for d < D/2, angle a = pos * base^(-2d/D):
  //   y[d] = x[d] cos a - x[d + D/2] sin a,   y[d + D/2] = x[d + D/2] cos a + x[d] sin a.
  virtual void rope_forward(Tensor& qkv, int T, int H, double base) = 0;
  // In place on the gradient: the transposed rotation (angle -a).
  virtual void rope_backward(Tensor& dqkv, int T, int H, double base) = 0;

  // ---- expert activations ----
  // GELU: Erf  a = 0.5 h (1 + erf(h / sqrt(2))),
  //       Tanh a = 0.5 h (1 + tanh(sqrt(2/pi) (h + 0.044715 h^3))).
  virtual void gelu_forward(const Tensor& h, Tensor& a, Gelu form) = 0;
  virtual void gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) = 0;
  // SwiGLU: a = silu(g) * u.
  virtual void swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) = 0;
  virtual void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                               Tensor& du) = 0;

  // ---- router (always the master dtype: f32, or f64 in gradient checks) ----
  // logits (n, M); bias (M) or undefined; writes gates g (n, M), idx (n, K) i32, w (n, K) and
  // stats (M + 1): sum over rows of the load-balancing probabilities p (p = g for softmax,
  // g / sum g for sigmoid; with aux_selected p = g on the K chosen experts, 0 elsewhere) and,
  // at M, the sum of logsumexp(logits)^2 (for the z-loss).
  virtual void router_forward(const Tensor& logits, const Tensor& bias, const RouterOptions& opt,
                              Tensor& gates, Tensor& idx, Tensor& w, Tensor& stats) = 0;
  // dw (n, K) -> dlogits (n, M), adding the aux-loss gradient (d loss / d p = aux_coef (M), or
  // undefined for none) and the z-loss gradient (z_coef * d/dr logsumexp(r)^2).
  virtual void router_backward(const Tensor& logits, const Tensor& gates, const Tensor& idx,
                               const Tensor& w, const Tensor& dw, const Tensor& aux_coef,
                               double z_coef, const RouterOptions& opt, Tensor& dlogits) = 0;

  // ---- token permutation (dispatch / combine) ----
  // dst[i] = src[rows[i]].  rows (m) i32, src (n, N), dst (m, N).
  virtual void gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) = 0;
  // out[t] = c * sum_k w[t,k] y[slot[t,k]], skipping slot < 0.  slot (n, K) i32, y (m, N).
  virtual void combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c,
                               Tensor& out) = 0;
  // dy[slot[t,k]] = c * w[t,k] dout[t] (rows no slot names are zeroed); dw[t,k] = c <dout[t], y[slot]>.
  virtual void combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot,
                                const Tensor& w, double c, Tensor& dy, Tensor& dw) = 0;
  // Adds into dx: dx[t] += sum_k src[slot[t,k]], skipping slot < 0 (dispatch's backward).
  virtual void scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) = 0;

  // ---- loss ----
  // Softmax cross-entropy over rows; returns the summed loss (double). Writes
  // dlogits = grad_scale * (softmax - onehot); dlogits may alias logits.
  virtual double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                               double grad_scale) = 0;

  // ---- optimizers (f32 master weights) ----
  // AdamW with decoupled weight decay: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
  virtual void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1,
                          double beta2, double eps, double wd, int64_t step) = 0;
  // SGD with momentum: buf = momentum * buf + g; p -= lr * (buf + wd * p).
  virtual void sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                        double wd) = 0;
};

// The CPU reference backend (always present).
std::unique_ptr<Backend> make_cpu_backend();
// The CUDA backend on `device_index`; throws when the build or the machine has no GPU.
std::unique_ptr<Backend> make_cuda_backend(int device_index);
// Number of CUDA devices usable by this process (0 without a GPU or a CUDA build).
int cuda_device_count();

}  // namespace moe::ops
