// manifest.toml: the one file that says what a checkpoint is. Rank 0 writes it last, after every
// shard is on disk, so a checkpoint directory with a manifest is complete. It holds the step, the
// resolved config and parameterization table (to refuse loading into a different model), the
// layout it was saved with, every parameter's global shape and place in the flat dense buffer,
// and for each shard file its size, XXH64 checksum and an index of its records, so a loading
// rank opens only the files it needs and trusts none it has not verified.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/ckpt/record_key.h"
#include "src/config/config.h"
#include "src/core/tensor.h"
#include "src/optim/parameterization.h"

namespace moe::ckpt {

// The resolved constants of the forward pass (docs/model.md), for readers of a checkpoint or an
// export; loading does not read them back (the config and table are what it checks).
struct ForwardConstants {
  bool attention = true;
  std::string activation = "gelu", gate = "softmax";
  // The GELU form of the experts and dense MLPs: "erf" or "tanh" (config::exact_gelu). Written
  // since 2026-12; a manifest without it is older, from when "gelu" meant the tanh form.
  std::string gelu = "erf";
  bool renormalize = true, expert_bias = false;
  double residual_mult = 1, c_agg = 1, attn_scale = 1, norm_eps = 1e-5;
  int64_t top_k = 1;
  double capacity_factor = 0, aux_loss = 0, z_loss = 0;
  std::vector<std::pair<std::string, double>> multiplier;  // per parameter group, table order
};
ForwardConstants forward_constants(const config::Config& cfg, const optim::ParamTable& table);
// The same as one JSON object (the export's "forward" metadata).
std::string forward_constants_json(const ForwardConstants& f);

struct ParamInfo {
  std::string name, group;
  Shape shape;  // global: expert tensors stacked over all M experts, (M, ...)
  bool expert = false;
  int64_t offset = 0;  // dense only: element offset in the flat dense buffer
  int64_t numel() const { return shape_numel(shape); }
};

struct ShardInfo {
  std::string file;  // name inside the checkpoint directory
  int64_t rank = 0;  // world rank that wrote it
  int64_t bytes = 0;
  uint64_t checksum = 0;  // XXH64 of the file's bytes
  std::vector<RecordKey> records;
};

struct SavedLayout {
  int64_t world = 1, ep = 1, dp = 1;
  bool zero1 = false;
  std::string optimizer;  // "adamw" | "sgd": which state kinds the shards hold
};

struct Manifest {
  int64_t version = kFormatVersion;
  // Written before 2026-12 (no forward.gelu): read_manifest has renamed the stored config's
  // moe.activation "gelu" to "gelu_tanh", the function those weights were trained with, and
  // the stored param_table has 6 significant digits (check_same_model compares at those).
  bool before_exact_gelu = false;
  int64_t step = 0;             // optimizer steps done = data cursor
  int64_t optimizer_steps = 0;  // the optimizer's own count (differs when steps were skipped)
  std::string run_id;           // the run that saved it (src/run/identity.h); "" before run ids
  int64_t segment = 1;          // which of the run's segments saved it (1 = the first start)
  std::string config;           // config::to_toml of the run that saved it
  std::string param_table;      // optim::format_table(table, "csv")
  ForwardConstants forward;     // written only
  SavedLayout layout;
  int64_t experts = 0;      // M
  int64_t dense_count = 0;  // elements of the flat dense buffer
  std::vector<ParamInfo> params;
  std::vector<std::string> bias_names;  // one expert-bias tensor (M) per MoE layer
  std::vector<ShardInfo> shards;
};

std::string manifest_to_toml(const Manifest& m);
// Parses and checks a manifest; any problem throws InputError naming `path`.
Manifest read_manifest(const std::string& path);
// Refuses (InputError naming `path` and the first differing key) unless every key of [model]
// and [moe] and every entry of the parameterization table match the current config.
void check_same_model(const Manifest& m, const std::string& path, const config::Config& cfg,
                      const optim::ParamTable& table);

}  // namespace moe::ckpt
