// The typed configuration. Each section lists its keys once, in visit(), which drives parsing
// (src/config/toml_io.cpp), unknown-key errors and the resolved config written to the run
// directory. Key names are binding (architecture.md); defaults are those of configs/default.toml.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace moe::config {

struct RunConfig {
  std::string dir = "runs/default";
  int64_t seed = 1234;
  // Signals that stop the run at the next step boundary with a checkpoint (src/run/
  // stop_signals.h); any other keeps its default action. [] = none caught.
  std::vector<std::string> stop_signals = {"SIGTERM", "SIGINT", "SIGUSR1"};
  // A stop still running this long after its signal exits at once (latest untouched); 0 = no bound.
  double stop_timeout_s = 120;
  template <class V> void visit(V& v) {
    v("dir", dir);
    v("seed", seed);
    v("stop_signals", stop_signals);
    v("stop_timeout_s", stop_timeout_s);
  }
};

struct ModelConfig {
  int64_t vocab = 512;    // V
  int64_t seq_len = 128;  // T
  int64_t width = 128;    // N
  int64_t heads = 4;      // H
  int64_t depth = 4;      // L
  bool attention = true;
  double norm_eps = 1e-5;
  // The MSSP paper's transformer options (docs/model.md):
  std::string position = "learned";  // learned (pos_embed table) | rope (rotary q, k; no table)
  double rope_base = 10000;          // RoPE angle of pair d: pos * rope_base^(-2d / d_head)
  bool qk_norm = false;              // RMSNorm without gain on each q and k head, before RoPE
  // Width of the dense GELU MLP of the blocks without an MoE layer (moe.stride > 1); 0 = 4 N
  // (the paper's mlp_ratio = 4), so that it grows with the width in sweeps. See mlp_width().
  int64_t mlp_width = 0;
  template <class V> void visit(V& v) {
    v("vocab", vocab);
    v("seq_len", seq_len);
    v("width", width);
    v("heads", heads);
    v("depth", depth);
    v("attention", attention);
    v("norm_eps", norm_eps);
    v("position", position);
    v("rope_base", rope_base);
    v("qk_norm", qk_norm);
    v("mlp_width", mlp_width);
  }
};

// The dense MLP width: model.mlp_width, or 4 N when it is 0.
inline int64_t mlp_width(const ModelConfig& m) { return m.mlp_width > 0 ? m.mlp_width : 4 * m.width; }

struct MoeConfig {
  int64_t experts = 8;         // M
  int64_t top_k = 2;           // K
  int64_t expert_width = 128;  // N_e
  // N_e as a multiple of the width: > 0 sets expert_width = round(ratio * N) when the config is
  // loaded (before validation), and the resolved config holds the number with ratio 0, so that
  // sweeps and coordinate checks scale expert_width per their axis as for any other config.
  double expert_ratio = 0;
  // An MoE layer in every stride-th block: block l (from 0) is MoE when l % stride == stride - 1
  // (the paper's code); the others have a dense GELU MLP of width model.mlp_width.
  int64_t stride = 1;
  // gelu: the exact (erf) GELU, PyTorch's nn.GELU() and the MSSP paper's; gelu_tanh: the tanh
  // form ("gelu" before 2026-12); swiglu: SwiGLU experts. The dense MLPs take the same GELU
  // (the tanh form with swiglu, as before): models/dense_mlp.h gelu_form.
  std::string activation = "gelu";  // gelu | gelu_tanh | swiglu
  // The preset decides these unless they are set here (then the table marks them overridden).
  std::optional<std::string> gate;         // softmax | sigmoid
  std::optional<bool> renormalize;         // w_i = g_i / sum_topK g
  std::optional<std::string> aggregation;  // sum (c_agg = 1) | mean (c_agg = 1/K)
  std::optional<bool> expert_bias;         // aux-loss-free balancing bias on selection
  // Gate scale (base_top_k / top_k)^gate_alpha on the combine weights (the paper's
  // moe_scaling_alpha; 1 with base_top_k = 1 is the mean over the K active experts). Unset: the
  // preset's value. Exclusive with `aggregation`.
  std::optional<double> gate_alpha;
  int64_t base_top_k = 1;                  // K0 of the gate scale
  // Switch load-balancing probabilities: "all" = the gate distribution over every expert
  // (softmax, or sigmoids normalised over M); "selected" = the scaled gates of the K chosen
  // experts, zero elsewhere (the paper's code). Unset: the preset's value.
  std::optional<std::string> aux_probs;
  double bias_update_rate = 1e-3;          // u in b_i -= u * sign(load_i - 1/M)
  double capacity_factor = 0.0;            // 0 = dropless
  double aux_loss = 0.01;                  // Switch load-balancing coefficient
  double z_loss = 0.001;                   // router z-loss coefficient
  template <class V> void visit(V& v) {
    v("experts", experts);
    v("top_k", top_k);
    v("expert_width", expert_width);
    v("expert_ratio", expert_ratio);
    v("stride", stride);
    v("activation", activation);
    v("gate", gate);
    v("renormalize", renormalize);
    v("aggregation", aggregation);
    v("expert_bias", expert_bias);
    v("gate_alpha", gate_alpha);
    v("base_top_k", base_top_k);
    v("aux_probs", aux_probs);
    v("bias_update_rate", bias_update_rate);
    v("capacity_factor", capacity_factor);
    v("aux_loss", aux_loss);
    v("z_loss", z_loss);
  }
};

// Whether block l has an MoE layer (else a dense MLP): moe.stride's rule.
inline bool is_moe_block(const MoeConfig& e, int64_t l) { return l % e.stride == e.stride - 1; }
// Whether the GELU of the experts and dense MLPs is the exact (erf) one: moe.activation =
// "gelu". With "gelu_tanh", and in the dense MLPs beside "swiglu" experts, it is the tanh form.
inline bool exact_gelu(const MoeConfig& e) { return e.activation == "gelu"; }
// The block of the k-th MoE layer (k from 0).
inline int64_t moe_block(const MoeConfig& e, int64_t k) { return (k + 1) * e.stride - 1; }
// The number of MoE layers among L blocks.
inline int64_t moe_layer_count(const MoeConfig& e, int64_t L) { return e.stride >= 1 ? L / e.stride : L; }

// The shape where (sigma, eta) were tuned.
struct BaseShape {
  int64_t width = 128;
  int64_t expert_width = 128;
  int64_t experts = 8;
  int64_t top_k = 2;
  int64_t depth = 4;
  std::optional<int64_t> heads;  // default: the head size stays fixed as the width grows
  template <class V> void visit(V& v) {
    v("width", width);
    v("expert_width", expert_width);
    v("experts", experts);
    v("top_k", top_k);
    v("depth", depth);
    v("heads", heads);
  }
};

// Exponents of (m_N, m_E, m_M, m_K, m_L) that replace a preset's rule for one quantity of one
// group; unset entries keep the preset's value.
struct Exponents {
  std::optional<double> N, Ne, M, K, L;
  template <class V> void visit(V& v) {
    v("N", N);
    v("Ne", Ne);
    v("M", M);
    v("K", K);
    v("L", L);
  }
  bool any() const { return N || Ne || M || K || L; }
};

struct GroupOverride {
  std::optional<Exponents> init;        // init std = sigma * prod m^e
  std::optional<Exponents> multiplier;  // forward multiplier = prod m^e
  std::optional<Exponents> lr;          // lr = eta * prod m^e
  std::optional<Exponents> eps;         // Adam eps = eps * prod m^e
  std::optional<Exponents> weight_decay;  // weight decay = wd * prod m^e
  std::optional<bool> zero_init;
  template <class V> void visit(V& v) {
    v("init", init);
    v("multiplier", multiplier);
    v("lr", lr);
    v("eps", eps);
    v("weight_decay", weight_decay);
    v("zero_init", zero_init);
  }
};

// Per-group base values at the base shape; unset entries fall back to the section defaults.
struct GroupBase {
  std::optional<double> init_std;  // sigma: the absolute init std at the base shape
  std::optional<double> lr;        // eta (absolute); default = optim.lr * lr_mult
  std::optional<double> lr_mult;   // eta = optim.lr * lr_mult
  template <class V> void visit(V& v) {
    v("init_std", init_std);
    v("lr", lr);
    v("lr_mult", lr_mult);
  }
};

// Tuned factors at the base shape (the paper's *_lr_mult and *_init_mult): the group's learning
// rate is optim.lr * lr * (its rule), its init std (its rule's base std) * init * (its rule).
struct GroupMultiplier {
  std::optional<double> lr;
  std::optional<double> init;
  template <class V> void visit(V& v) {
    v("lr", lr);
    v("init", init);
  }
};

struct ParamConfig {
  // sp | mup (the MSSP paper's muP baseline) | mssp (the paper's MSSP) | jiang (arXiv 2601.20205)
  std::string preset = "mssp";
  // auto | I | II | III: which dimensions scale (parameterization.md). auto infers it from the
  // dimensions that differ from the base; mup and mssp need one.
  std::string regime = "auto";
  BaseShape base;
  double init_std = 0.02;  // sigma of the embeddings, and of every group of sp and jiang
  std::optional<double> depth_alpha;  // residual m_L^-alpha; default from the preset
  bool scale_eps = false;  // sp/jiang, CompleteP: hidden Adam eps * m_N^-1 * m_L^-alpha
  bool global_eps = false;  // mup/mssp: one Adam eps for every group (the paper's second baseline)
  std::map<std::string, GroupBase> groups;             // [parameterization.groups.<group>]
  std::map<std::string, GroupMultiplier> multipliers;  // [parameterization.multipliers.<group>]
  std::map<std::string, GroupOverride> overrides;      // [parameterization.overrides.<group>]
  template <class V> void visit(V& v) {
    v("preset", preset);
    v("regime", regime);
    v("base", base);
    v("init_std", init_std);
    v("depth_alpha", depth_alpha);
    v("scale_eps", scale_eps);
    v("global_eps", global_eps);
    v("groups", groups);
    v("multipliers", multipliers);
    v("overrides", overrides);
  }
};

struct OptimConfig {
  std::string name = "adamw";  // adamw | sgd
  double lr = 3e-3;
  double weight_decay = 0.0;
  int64_t warmup = 20;
  std::string schedule = "cosine";  // cosine | linear | constant
  double min_lr_ratio = 0.1;        // final lr / peak lr for cosine and linear
  // The step at which cosine or linear decay reaches min_lr_ratio (the paper's max_steps);
  // 0 = train.steps. Set, a run can later be extended without changing its schedule.
  int64_t decay_steps = 0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double momentum = 0.9;  // SGD
  double grad_clip = 1.0;  // global norm; 0 = off
  template <class V> void visit(V& v) {
    v("name", name);
    v("lr", lr);
    v("weight_decay", weight_decay);
    v("warmup", warmup);
    v("schedule", schedule);
    v("min_lr_ratio", min_lr_ratio);
    v("decay_steps", decay_steps);
    v("beta1", beta1);
    v("beta2", beta2);
    v("eps", eps);
    v("momentum", momentum);
    v("grad_clip", grad_clip);
  }
};

struct TrainConfig {
  int64_t steps = 400;
  int64_t batch = 8;  // global batch in sequences
  int64_t log_every = 10;
  std::string nonfinite = "stop";  // skip | stop: what a non-finite loss or gradient does
  std::string dtype = "f32";       // f32 | bf16 (mixed precision: f32 master weights, bf16 GEMMs)
  double peak_tflops = 0;          // per device, for MFU in metrics; 0 = unknown (no MFU)
  // Per rank; a config whose estimate (src/train/memory_estimate.h) exceeds it is refused before
  // anything is allocated. 0 = what the machine has: MemAvailable / ranks on the node (CPU), the
  // device's free memory (CUDA).
  double memory_limit_gb = 0;
  // Sequences per rank per micro-step: the step accumulates gradients over
  // batch / (ranks * micro_batch) micro-steps. 0 = the whole local batch at once.
  int64_t micro_batch = 0;
  // Held-out validation (data.val_fraction / data.val_path; the synthetic language has its own
  // stream): every eval_every steps and at the last step, the mean cross-entropy over
  // eval_batches x batch held-out windows spread evenly over the split (src/data/held_out.h).
  // eval_every = 0: the last step only; eval_batches = 0: no validation.
  int64_t eval_every = 0;
  int64_t eval_batches = 8;
  template <class V> void visit(V& v) {
    v("steps", steps);
    v("batch", batch);
    v("micro_batch", micro_batch);
    v("eval_every", eval_every);
    v("eval_batches", eval_batches);
    v("log_every", log_every);
    v("nonfinite", nonfinite);
    v("dtype", dtype);
    v("peak_tflops", peak_tflops);
    v("memory_limit_gb", memory_limit_gb);
  }
};

struct DataConfig {
  std::string kind = "synthetic";  // synthetic | llmc | text | bin
  std::string path = "";           // file or glob for llmc / text / bin
  // A folder that a relative path or val_path is read from ("" = the working directory): the
  // paper's configs name their data folder once and read train.bin and val.bin from it.
  std::string dir = "";
  // bin: flat little-endian tokens, no header (nanoGPT's and the MSSP paper's train.bin and
  // val.bin): 2 bytes each (uint16, as its prepare.py writes), or 4 for vocabularies > 65,536.
  int64_t token_bytes = 2;
  int64_t seed = 1;                // the synthetic language and the order of windows
  // Synthetic language: a sparse Markov chain over the vocabulary plus copies at a fixed lag.
  int64_t branching = 8;      // successors per token
  double zipf = 1.2;          // successor weights ~ rank^-zipf
  double copy_prob = 0.15;    // chance that a token repeats the one `copy_lag` positions back
  int64_t copy_lag = 16;
  // Held-out split of llmc / text data: the last val_fraction of the windows (in file order) are
  // never trained on; or val_path, files of the same kind held out whole. The synthetic language
  // holds out a disjoint stream of its own.
  double val_fraction = 0;
  std::string val_path = "";
  template <class V> void visit(V& v) {
    v("kind", kind);
    v("path", path);
    v("val_fraction", val_fraction);
    v("val_path", val_path);
    v("dir", dir);
    v("token_bytes", token_bytes);
    v("seed", seed);
    v("branching", branching);
    v("zipf", zipf);
    v("copy_prob", copy_prob);
    v("copy_lag", copy_lag);
  }
};

// A data file name or glob as it is opened: relative names are taken inside data.dir when set.
inline std::string data_file(const DataConfig& d, const std::string& name) {
  if (name.empty() || d.dir.empty() || name[0] == '/') return name;
  return d.dir.back() == '/' ? d.dir + name : d.dir + "/" + name;
}

struct ParallelConfig {
  // Expert-parallel size; world = ep x data-parallel. `ep = "auto"` in TOML sets ep_auto and
  // resolves ep to the largest divisor of moe.experts that divides the world size
  // (auto_ep(); 1 where the world size is not known). ep_auto is not a key: the resolved config
  // holds the number.
  int64_t ep = 1;
  bool ep_auto = false;
  std::string backend = "mpi";    // mpi | nccl
  bool zero1 = false;
  std::string device = "cpu";     // cpu | cuda
  // A blocking collective unfinished after this many seconds stops every rank (a peer hangs or
  // died unnoticed): comm/watchdog.h. 0 = wait forever.
  double timeout_s = 600;
  template <class V> void visit(V& v) {
    v("ep", ep);
    v("backend", backend);
    v("zero1", zero1);
    v("device", device);
    v("timeout_s", timeout_s);
  }
};

struct CheckpointConfig {
  int64_t every = 0;  // steps; 0 = only at the end
  int64_t keep = 2;
  template <class V> void visit(V& v) {
    v("every", every);
    v("keep", keep);
  }
};

// Fault injection for the reliability tests (tests/reliability): off unless a step is set.
// Steps count from 1; a fault fires on one world rank just before that step's forward pass.
struct DebugConfig {
  int64_t inject_nan_step = 0;          // 0 = off
  int64_t inject_nan_rank = 0;
  std::string inject_nan_into = "grad";  // grad (one element of the local gradient) | loss
  int64_t fault_step = 0;               // 0 = off
  int64_t fault_rank = 0;
  std::string fault = "throw";  // throw (moe::Error) | exit (_exit(1)) | hang (sleep forever)
  // Every token's choices go to experts e, e+1, ... (mod M): a token surge on one expert's rank,
  // to test dropless buffers and capacity drops. The model's math is not meaningful then.
  int64_t route_all_to_expert = -1;     // -1 = off
  // A stop for a signal first sleeps this long (the tests of the stop's bounds).
  double stop_delay_s = 0;
  // Every step is followed by this much sleep: a run that lasts a known time whatever the
  // machine's speed (the time-limit and requeue tests). The numbers are unchanged.
  double step_delay_s = 0;
  template <class V> void visit(V& v) {
    v("inject_nan_step", inject_nan_step);
    v("inject_nan_rank", inject_nan_rank);
    v("inject_nan_into", inject_nan_into);
    v("fault_step", fault_step);
    v("fault_rank", fault_rank);
    v("fault", fault);
    v("route_all_to_expert", route_all_to_expert);
    v("stop_delay_s", stop_delay_s);
    v("step_delay_s", step_delay_s);
  }
};

struct Config {
  RunConfig run;
  ModelConfig model;
  MoeConfig moe;
  ParamConfig parameterization;
  OptimConfig optim;
  TrainConfig train;
  DataConfig data;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  DebugConfig debug;
  template <class V> void visit(V& v) {
    v("run", run);
    v("model", model);
    v("moe", moe);
    v("parameterization", parameterization);
    v("optim", optim);
    v("train", train);
    v("data", data);
    v("parallel", parallel);
    v("checkpoint", checkpoint);
    v("debug", debug);
  }
};

// Parses a TOML file, applies "section.key=value" overrides, validates; throws InputError
// naming the file and the key. `world_size` checks the parallel layout (0 skips that check).
Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   int world_size = 0);
// Same from TOML text (tests, embedded defaults); `origin` names it in errors.
Config parse_config(const std::string& text, const std::string& origin,
                    const std::vector<std::string>& overrides, int world_size = 0);
// Checks every value and cross-key constraint; throws InputError naming the key.
void validate(const Config& c, const std::string& origin, int world_size);
// parallel.ep = "auto": the largest divisor of `experts` that divides `world_size` (1 when
// world_size <= 0).
int64_t auto_ep(int64_t experts, int world_size);
// The resolved config as TOML text (every key, defaults included).
std::string to_toml(const Config& c);

}  // namespace moe::config
