// The per-rank memory estimate, term by term, and the machine's limit.
#include "src/train/memory_estimate.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "src/core/error.h"

#ifdef MOE_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace moe::train {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kF32 = 4;
// Buffers made by models::reuse() are 1.25x what they first hold (room to grow without a new
// allocation); activations and exchange buffers are all of that kind.
constexpr double kReuseSlack = 1.25;
// The process before the model: MPI (shared-memory transport), OpenBLAS, the binary. Measured
// at 23 MiB peak RSS for a tiny model on Debian 12 with Open MPI 4.1; rounded up.
constexpr double kRuntimeBytes = 64.0 * 1024 * 1024;

// "1.23 GiB" or "45.6 MiB".
std::string human(double bytes) {
  char b[48];
  if (bytes >= kGiB)
    std::snprintf(b, sizeof b, "%.2f GiB", bytes / kGiB);
  else
    std::snprintf(b, sizeof b, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return b;
}

// MemAvailable from /proc/meminfo in bytes, 0 when unreadable.
double mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return 0;
}

}  // namespace

std::string format_bytes(double bytes) { return human(bytes); }

std::string MemoryEstimate::describe() const {
  return human(total()) + " (parameters " + human(params) + ", gradients " + human(grads) +
         ", optimizer state " + human(optimizer) + ", activations " + human(activations) +
         ", all-to-all buffers " + human(a2a) + ", runtime " + human(runtime) + ")";
}

MemoryEstimate estimate_memory(const config::Config& cfg, int world_size) {
  const auto& m = cfg.model;
  const auto& e = cfg.moe;
  const double P = std::max(1, world_size), EP = double(cfg.parallel.ep);
  const double N = double(m.width), V = double(m.vocab), T = double(m.seq_len);
  const double L = double(m.depth), H = double(m.heads), M = double(e.experts);
  const double F = double(e.expert_width), K = double(e.top_k), Ml = M / EP;
  // Sequences on this rank at once: one micro-batch under gradient accumulation.
  const double B = cfg.train.micro_batch > 0 ? double(cfg.train.micro_batch) : double(cfg.train.batch) / P;
  const double n = B * T;                        // tokens on this rank
  const bool attn = m.attention, swiglu = e.activation == "swiglu";
  // moe.stride: Lm blocks have an MoE layer, the other Ld a dense MLP of width Fd.
  const double Lm = double(config::moe_layer_count(e, m.depth)), Ld = L - Lm;
  const double Fd = double(config::mlp_width(m));
  MemoryEstimate est;

  // Parameters: models/transformer.cpp registers exactly these.
  const double pos = m.position == "learned" ? T * N : 0;
  const double dense = V * N + pos + L * (attn ? N + 4 * N * N : 0) + Lm * (N + M * N) +
                       Ld * (N + 2 * N * Fd) + N + V * N;
  const double expert = Lm * Ml * F * N * (swiglu ? 3 : 2);
  est.dense_params = int64_t(dense);
  est.expert_params = int64_t(expert);
  est.params = (dense + expert) * kF32;
  est.grads = est.params;
  // Mixed precision keeps a bf16 copy of every weight beside the f32 master.
  const bool mixed = cfg.train.dtype == "bf16";
  if (mixed) est.params += (dense + expert) * 2;

  // Optimizer: m (and v for Adam) for the expert buffer and the dense buffer or its shard;
  // ZeRO-1 adds a padded copy of the dense buffer and a gradient shard.
  const double slots = cfg.optim.name == "adamw" ? 2 : 1;
  const double shard = std::ceil(dense / P);
  const double dense_len = cfg.parallel.zero1 ? shard : dense;
  est.optimizer =
      (slots * (dense_len + expert) + (cfg.parallel.zero1 ? shard * P + shard : 0)) * kF32;

  // Activations kept across the step (models/transformer.cpp, attention.cpp, dense_mlp.cpp,
  // moe_layer.cpp, dispatcher.cpp), in bytes: the residual stream, norms, router, logits and
  // loss in f32 (`f`), the GEMM and attention operands in the compute dtype (`c`: 2 bytes under
  // mixed precision), which then also keeps each sublayer's input and output gradient cast to
  // it (models/linear.h as_dtype) and the unembedding's input and logit gradient.
  const double f = kF32, c = mixed ? 2 : kF32, cast = mixed ? 1 : 0;
  const double subs = L * (attn ? 2 : 1);
  double act = (subs + 1) * n * N * f;  // residual stream h
  act += subs * (n * N + n) * f;        // normed inputs and 1/rms per sublayer
  // qkv, dqkv, o, do, and the probabilities (B, H, T, T), or on CUDA the fused attention's
  // row statistics (B, H, T), f32 (models/attention.cpp: heads up to 128 wide).
  const bool fused = cfg.parallel.device == "cuda" && N / H <= 128;
  if (attn) {
    act += L * ((n * 3 * N * 2 + n * N * 2 + cast * 2 * n * N) * c +
                B * H * T * (fused ? f : T * c));
    if (m.qk_norm) act += L * (n * 3 * N * c + n * 2 * H * f);  // the projection before QK-norm, 1/rms
  }
  act += Lm * (3 * n * M + 2 * n * K + n * K) * f;  // router logits, gates, dlogits; idx, w; dw
  act += Ld * (4 * n * Fd + cast * 2 * n * N) * c;  // dense MLP: pre-activation, GELU, their grads
  act += (6 * n * N + 2 * n + n * V) * f;           // sub_out, final norm, dfn, dh, dsub, dxn; logits
  act += cast * (n * N + n * V) * c;                // the unembedding's operands
  est.activations = act * kReuseSlack;

  // Exchange and expert buffers per MoE layer at the expected load (models/moe/dispatcher.cpp,
  // experts.cpp). Rows sent = n K (fewer with a capacity); rows received = n K at balance,
  // times the capacity factor or the dropless headroom. Sending side: the gathered rows and
  // their f32 output gradient, and with EP > 1 the returned outputs and input gradients; under
  // mixed precision also the outputs widened to f32, the gradient narrowed back and the input
  // gradient widened. Receiving side: the expert outputs and input gradients, and with EP > 1
  // the received rows and output gradients (with EP = 1 these are the sending side's). Plus the
  // (rows, Ne) expert activations and, mixed, the layer's input cast to bf16.
  const double cf = e.capacity_factor > 0 ? e.capacity_factor : kDroplessHeadroom;
  const double sent = n * K * std::min(1.0, cf);
  const double recv = EP > 1 ? n * K * cf : sent;
  const double ep = EP > 1 ? 1 : 0;
  const double send_side = sent * N * (c + f + cast * (f + c + f) + ep * 2 * c);
  const double recv_side = recv * N * (2 + ep * 2) * c;
  const double per_layer = send_side + recv_side + recv * F * (swiglu ? 6 : 4) * c + cast * n * N * c;
  est.a2a = Lm * per_layer * kReuseSlack;
  est.runtime = cfg.parallel.device == "cuda" ? 0 : kRuntimeBytes;
  return est;
}

MemoryLimit memory_limit(const config::Config& cfg, int ranks_on_node) {
  MemoryLimit lim;
  if (cfg.train.memory_limit_gb > 0) {
    lim.bytes = cfg.train.memory_limit_gb * kGiB;
    lim.source = "train.memory_limit_gb";
    return lim;
  }
  if (cfg.parallel.device == "cuda") {
#ifdef MOE_HAVE_CUDA
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
      lim.bytes = double(free_b);
      lim.source = "free memory of this rank's GPU (" + human(double(free_b)) + " of " +
                   human(double(total_b)) + "); set train.memory_limit_gb to change it";
    }
#endif
    return lim;
  }
  const double avail = mem_available();
  if (avail <= 0) return lim;
  const int r = std::max(1, ranks_on_node);
  lim.bytes = avail / r;
  lim.source = "MemAvailable " + human(avail) + " / " + std::to_string(r) +
               " rank(s) on this node; set train.memory_limit_gb to change it";
  return lim;
}

void check_memory(const MemoryEstimate& est, const MemoryLimit& limit) {
  if (limit.bytes <= 0 || est.total() <= limit.bytes) return;
  throw InputError("train.memory_limit_gb: a rank would need about " + est.describe() +
                   ", more than its limit of " + human(limit.bytes) + " (" + limit.source +
                   "); use more ranks, a smaller train.batch or a smaller model");
}

}  // namespace moe::train
