// Value and cross-key checks on a parsed Config; each failure names the key and where its value
// came from: the file, or the --set that gave it (for a cross-key constraint, the --set of
// either key).
#include <cmath>
#include <initializer_list>
#include <string>

#include "src/config/config.h"
#include "src/config/toml_reader.h"
#include "src/core/error.h"
#include "src/optim/groups.h"
#include "src/optim/regime.h"

namespace moe::config {
namespace {

struct Checker {
  const TomlContext& ctx;
  // `related`: the other keys of a cross-key constraint; a --set of one of them is the source.
  void require(bool ok, const std::string& key, const std::string& what,
               std::initializer_list<const char*> related = {}) const {
    if (!ok) ctx.fail(key, what, related);
  }
  void positive(int64_t v, const std::string& key) const {
    require(v >= 1, key, "must be >= 1, got " + std::to_string(v));
  }
  void one_of(const std::string& v, const std::string& key, std::initializer_list<const char*> ok) const {
    std::string list;
    for (const char* s : ok) {
      if (v == s) return;
      list += std::string(list.empty() ? "" : ", ") + "\"" + s + "\"";
    }
    require(false, key, "\"" + v + "\" is not one of " + list);
  }
  void range(double v, double lo, double hi, const std::string& key, bool hi_open = false) const {
    bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
    require(ok, key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                         (hi_open ? ")" : "]") + ", got " + std::to_string(v));
  }
};

}  // namespace

int64_t auto_ep(int64_t experts, int world_size) {
  int64_t best = 1;
  for (int64_t d = 1; world_size > 0 && d <= experts; ++d)
    if (experts % d == 0 && world_size % d == 0) best = d;
  return best;
}

void validate(const Config& c, const std::string& origin, int world_size) {
  validate(c, TomlContext{origin, {}}, world_size);
}

void validate(const Config& c, const TomlContext& ctx, int world_size) {
  Checker ck{ctx};
  const ModelConfig& m = c.model;
  ck.require(m.vocab >= 2, "model.vocab", "must be >= 2, got " + std::to_string(m.vocab));
  // Token ids are 2 bytes in llm.c shards and in bin files of data.token_bytes = 2, and an
  // int32 in a batch (4-byte bin files).
  const bool wide_tokens = c.data.kind == "bin" && c.data.token_bytes == 4;
  if (wide_tokens)
    ck.require(m.vocab <= 2147483647, "model.vocab", "must be <= 2147483647 (token ids are int32)");
  else
    ck.require(m.vocab <= 65536, "model.vocab",
               "must be <= 65536 (token ids are 2 bytes; data.kind = \"bin\" with data.token_bytes = 4 reads larger ones)");
  ck.positive(m.seq_len, "model.seq_len");
  ck.positive(m.width, "model.width");
  ck.positive(m.heads, "model.heads");
  ck.positive(m.depth, "model.depth");
  ck.require(m.width % m.heads == 0, "model.heads",
             "width " + std::to_string(m.width) + " is not divisible by " + std::to_string(m.heads) + " heads",
             {"model.width"});
  ck.require(m.norm_eps > 0, "model.norm_eps", "must be > 0");
  ck.one_of(m.position, "model.position", {"learned", "rope"});
  ck.require(m.rope_base > 1 && m.rope_base < 1e12, "model.rope_base", "must be in (1, 1e12), got " + std::to_string(m.rope_base));
  if (m.position == "rope") {
    ck.require(m.attention, "model.position", "\"rope\" rotates attention's q and k: it needs model.attention = true",
               {"model.attention"});
    ck.require(m.width % m.heads != 0 || (m.width / m.heads) % 2 == 0, "model.position",
               "\"rope\" needs an even head size, got width / heads = " + std::to_string(m.width / m.heads),
               {"model.width", "model.heads"});
  }
  if (m.qk_norm)
    ck.require(m.attention, "model.qk_norm", "normalises attention's q and k: it needs model.attention = true",
               {"model.attention"});
  ck.require(m.mlp_width >= 0, "model.mlp_width",
             "must be >= 0 (0 = 4 * model.width), got " + std::to_string(m.mlp_width));

  const MoeConfig& e = c.moe;
  ck.positive(e.experts, "moe.experts");
  ck.positive(e.top_k, "moe.top_k");
  ck.require(e.top_k <= e.experts, "moe.top_k",
             "top_k " + std::to_string(e.top_k) + " exceeds experts " + std::to_string(e.experts),
             {"moe.experts"});
  ck.require(std::isfinite(e.expert_ratio) && e.expert_ratio >= 0 && e.expert_ratio < 1e6, "moe.expert_ratio",
             "must be 0 (use moe.expert_width) or a positive multiple of model.width, got " +
                 std::to_string(e.expert_ratio));
  ck.require(e.expert_ratio == 0, "moe.expert_ratio",
             "ratio * model.width = " + std::to_string(e.expert_ratio * double(m.width)) +
                 " rounds to no expert width",
             {"model.width"});
  ck.positive(e.expert_width, "moe.expert_width");
  ck.require(e.stride >= 1 && e.stride <= m.depth, "moe.stride",
             "must be in [1, model.depth = " + std::to_string(m.depth) + "] (one MoE layer every stride blocks), got " +
                 std::to_string(e.stride),
             {"model.depth"});
  ck.one_of(e.activation, "moe.activation", {"gelu", "gelu_tanh", "swiglu"});
  if (e.gate) ck.one_of(*e.gate, "moe.gate", {"softmax", "sigmoid"});
  if (e.aggregation) ck.one_of(*e.aggregation, "moe.aggregation", {"sum", "mean"});
  if (e.gate_alpha) ck.range(*e.gate_alpha, 0, 4, "moe.gate_alpha");
  ck.require(!(e.gate_alpha && e.aggregation), "moe.gate_alpha",
             "set moe.gate_alpha (gate scale (base_top_k/top_k)^alpha) or moe.aggregation, not both");
  ck.positive(e.base_top_k, "moe.base_top_k");
  if (e.aux_probs) ck.one_of(*e.aux_probs, "moe.aux_probs", {"all", "selected"});
  ck.require(e.capacity_factor >= 0, "moe.capacity_factor", "must be >= 0 (0 = dropless)");
  ck.require(e.aux_loss >= 0, "moe.aux_loss", "must be >= 0");
  ck.require(e.z_loss >= 0, "moe.z_loss", "must be >= 0");
  ck.require(e.bias_update_rate >= 0, "moe.bias_update_rate", "must be >= 0");

  const ParamConfig& p = c.parameterization;
  ck.one_of(p.preset, "parameterization.preset", {"sp", "mup", "mssp", "jiang"});
  ck.one_of(p.regime, "parameterization.regime", {"auto", "I", "II", "III"});
  ck.positive(p.base.width, "parameterization.base.width");
  ck.positive(p.base.expert_width, "parameterization.base.expert_width");
  ck.positive(p.base.experts, "parameterization.base.experts");
  ck.positive(p.base.top_k, "parameterization.base.top_k");
  ck.positive(p.base.depth, "parameterization.base.depth");
  ck.require(p.base.top_k <= p.base.experts, "parameterization.base.top_k", "exceeds base.experts",
             {"parameterization.base.experts"});
  if (p.base.heads) {
    ck.positive(*p.base.heads, "parameterization.base.heads");
    ck.require(p.base.width % *p.base.heads == 0, "parameterization.base.heads", "does not divide base.width",
               {"parameterization.base.width"});
  }
  ck.require(p.init_std > 0, "parameterization.init_std", "must be > 0");
  if (p.depth_alpha) ck.range(*p.depth_alpha, 0, 2, "parameterization.depth_alpha");
  for (const auto& [name, g] : p.groups) {
    std::string key = "parameterization.groups." + name;
    ck.require(optim::group_from_name(name).has_value(), key, "unknown parameter group");
    if (g.init_std) ck.require(*g.init_std >= 0, key + ".init_std", "must be >= 0");
    if (g.lr) ck.require(*g.lr > 0, key + ".lr", "must be > 0");
    if (g.lr_mult) ck.require(*g.lr_mult > 0, key + ".lr_mult", "must be > 0");
    ck.require(!(g.lr && g.lr_mult), key, "set lr or lr_mult, not both");
  }
  for (const auto& [name, g] : p.multipliers) {
    std::string key = "parameterization.multipliers." + name;
    ck.require(optim::group_from_name(name).has_value(), key, "unknown parameter group");
    if (g.lr) ck.require(*g.lr > 0 && *g.lr < 1e12, key + ".lr", "must be > 0");
    if (g.init) ck.require(*g.init >= 0 && *g.init < 1e12, key + ".init", "must be >= 0");
    auto gb = p.groups.find(name);
    if (gb != p.groups.end()) {
      ck.require(!(g.lr && (gb->second.lr || gb->second.lr_mult)), key + ".lr",
                 "parameterization.groups." + name + " sets this group's learning rate already");
      ck.require(!(g.init && gb->second.init_std), key + ".init",
                 "parameterization.groups." + name + ".init_std sets this group's init already");
    }
  }
  for (const auto& [name, o] : p.overrides)
    ck.require(optim::group_from_name(name).has_value(), "parameterization.overrides." + name,
               "unknown parameter group");

  const OptimConfig& o = c.optim;
  ck.one_of(o.name, "optim.name", {"adamw", "sgd"});
  ck.require(o.lr > 0, "optim.lr", "must be > 0");
  ck.require(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  ck.require(o.warmup >= 0, "optim.warmup", "must be >= 0");
  ck.one_of(o.schedule, "optim.schedule", {"cosine", "linear", "constant"});
  ck.require(o.decay_steps >= 0, "optim.decay_steps", "must be >= 0 (0 = train.steps)");
  ck.range(o.min_lr_ratio, 0, 1, "optim.min_lr_ratio");
  ck.range(o.beta1, 0, 1, "optim.beta1", true);
  ck.range(o.beta2, 0, 1, "optim.beta2", true);
  ck.require(o.eps > 0, "optim.eps", "must be > 0");
  ck.range(o.momentum, 0, 1, "optim.momentum", true);
  ck.require(o.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 = off)");

  const TrainConfig& t = c.train;
  ck.require(t.steps >= 0, "train.steps", "must be >= 0");
  ck.positive(t.batch, "train.batch");
  ck.positive(t.log_every, "train.log_every");
  ck.one_of(t.nonfinite, "train.nonfinite", {"skip", "stop"});
  ck.one_of(t.dtype, "train.dtype", {"f32", "bf16"});
  ck.require(t.peak_tflops >= 0, "train.peak_tflops", "must be >= 0 (0 = unknown)");
  ck.require(t.micro_batch >= 0, "train.micro_batch", "must be >= 0 (0 = the whole local batch)");
  ck.require(t.eval_every >= 0, "train.eval_every", "must be >= 0 (0 = at the last step only)");
  ck.require(t.eval_batches >= 0, "train.eval_batches", "must be >= 0 (0 = no validation)");

  const DataConfig& d = c.data;
  ck.one_of(d.kind, "data.kind", {"synthetic", "llmc", "text", "bin"});
  ck.require(d.token_bytes == 2 || d.token_bytes == 4, "data.token_bytes",
             "must be 2 (uint16 tokens, as the paper's prepare.py writes) or 4, got " + std::to_string(d.token_bytes));
  ck.require(d.kind == "bin" || d.token_bytes == 2, "data.token_bytes",
             "applies to data.kind = \"bin\" (llm.c shards and text have their own token size)", {"data.kind"});
  ck.require(d.kind != "synthetic" || d.dir.empty(), "data.dir",
             "applies to data files; the synthetic language is generated", {"data.kind"});
  if (d.kind != "synthetic")
    ck.require(!d.path.empty(), "data.path", "is required for data.kind = \"" + d.kind + "\"", {"data.kind"});
  if (d.kind == "text")
    ck.require(m.vocab >= 256, "model.vocab", "must be >= 256 for byte-level text", {"data.kind"});
  ck.require(d.branching >= 1 && d.branching <= m.vocab, "data.branching",
             "must be in [1, model.vocab = " + std::to_string(m.vocab) + "], got " + std::to_string(d.branching),
             {"model.vocab"});
  ck.require(d.zipf >= 0, "data.zipf", "must be >= 0");
  ck.range(d.copy_prob, 0, 1, "data.copy_prob", true);
  ck.positive(d.copy_lag, "data.copy_lag");
  ck.range(d.val_fraction, 0, 0.5, "data.val_fraction");
  if (d.kind == "synthetic") {
    ck.require(d.val_fraction == 0, "data.val_fraction",
               "applies to data files; the synthetic language holds out a stream of its own",
               {"data.kind"});
    ck.require(d.val_path.empty(), "data.val_path",
               "applies to data files; the synthetic language holds out a stream of its own",
               {"data.kind"});
  } else {
    ck.require(d.val_fraction == 0 || d.val_path.empty(), "data.val_fraction",
               "and data.val_path both name a held-out split; set one", {"data.val_path"});
    ck.require(t.eval_every == 0 || d.val_fraction > 0 || !d.val_path.empty(), "train.eval_every",
               "needs a held-out split: set data.val_fraction or data.val_path", {"data.kind"});
  }

  const ParallelConfig& pl = c.parallel;
  ck.positive(pl.ep, "parallel.ep");
  ck.require(e.experts % pl.ep == 0, "parallel.ep",
             "moe.experts = " + std::to_string(e.experts) + " is not divisible by ep = " + std::to_string(pl.ep),
             {"moe.experts"});
  ck.one_of(pl.backend, "parallel.backend", {"mpi", "nccl"});
  ck.one_of(pl.device, "parallel.device", {"cpu", "cuda"});
  if (pl.backend == "nccl")
    ck.require(pl.device == "cuda", "parallel.backend", "\"nccl\" needs parallel.device = \"cuda\"",
               {"parallel.device"});
  if (world_size > 0) {
    ck.require(world_size % pl.ep == 0, "parallel.ep",
               "world size " + std::to_string(world_size) + " is not divisible by ep = " + std::to_string(pl.ep));
    ck.require(t.batch % world_size == 0, "train.batch",
               "global batch " + std::to_string(t.batch) + " is not divisible by world size " + std::to_string(world_size));
    const int64_t local = t.batch / world_size;
    ck.require(t.micro_batch == 0 || (t.batch % world_size == 0 && local % t.micro_batch == 0),
               "train.micro_batch",
               std::to_string(t.micro_batch) + " does not divide the " + std::to_string(local) +
                   " sequences per rank (train.batch = " + std::to_string(t.batch) + " over " +
                   std::to_string(world_size) + " ranks)",
               {"train.batch"});
  }

  ck.require(pl.timeout_s >= 0, "parallel.timeout_s", "must be >= 0 (0 = no timeout)");
  ck.require(t.memory_limit_gb >= 0, "train.memory_limit_gb", "must be >= 0 (0 = what the machine has)");

  const DebugConfig& g = c.debug;
  ck.require(g.inject_nan_step >= 0, "debug.inject_nan_step", "must be >= 0 (0 = off)");
  ck.one_of(g.inject_nan_into, "debug.inject_nan_into", {"grad", "loss"});
  ck.require(g.fault_step >= 0, "debug.fault_step", "must be >= 0 (0 = off)");
  ck.one_of(g.fault, "debug.fault", {"throw", "exit", "hang"});
  ck.require(g.route_all_to_expert >= -1 && g.route_all_to_expert < e.experts,
             "debug.route_all_to_expert", "must be -1 (off) or an expert index below moe.experts",
             {"moe.experts"});

  for (size_t i = 0; i < c.run.stop_signals.size(); ++i) {
    const std::string& sig = c.run.stop_signals[i];
    ck.require(sig == "SIGTERM" || sig == "SIGINT" || sig == "SIGUSR1" || sig == "SIGUSR2" || sig == "SIGHUP",
               "run.stop_signals[" + std::to_string(i) + "]",
               "\"" + sig + "\" is not one of \"SIGTERM\", \"SIGINT\", \"SIGUSR1\", \"SIGUSR2\", \"SIGHUP\"",
               {"run.stop_signals"});
  }
  ck.require(c.run.stop_timeout_s >= 0, "run.stop_timeout_s", "must be >= 0 (0 = no bound)");

  ck.range(g.stop_delay_s, 0, 3600, "debug.stop_delay_s");
  ck.range(g.step_delay_s, 0, 3600, "debug.step_delay_s");

  const CheckpointConfig& k = c.checkpoint;
  ck.require(k.every >= 0, "checkpoint.every", "must be >= 0 (0 = only at the end)");
  ck.positive(k.keep, "checkpoint.keep");

  // Last: a shape that does not decide the regime is a statement about the whole config, so
  // any single bad key is reported first.
  if (p.preset == "mup" || p.preset == "mssp") {
    ck.require(!p.scale_eps, "parameterization.scale_eps",
               "applies to sp and jiang; mup and mssp scale Adam eps per group (global_eps = true for one eps)");
    if (p.regime == "auto") {
      std::string why;
      auto r = optim::infer_regime({m.width, e.expert_width, e.experts, e.top_k, p.base.width,
                                    p.base.expert_width, p.base.experts, p.base.top_k},
                                   &why);
      ck.require(r.has_value(), "parameterization.regime",
                 "\"auto\" cannot decide: " + why + "; preset \"" + p.preset +
                     "\" has different rules in each regime, so set regime = \"I\", \"II\" or \"III\"");
    }
  } else {
    ck.require(!p.global_eps, "parameterization.global_eps", "applies to mup and mssp");
  }
}

}  // namespace moe::config
