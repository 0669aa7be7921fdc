// Loading: every rank reads the manifest, checks the model, works out from the index which
// records cover what it holds at the current layout (its dense values, its experts by global
// id, its range of the dense optimizer state, the expert biases), opens only those shards,
// verifies each one's size and checksum, and stages the data on the host. Only when every rank
// has everything are the live tensors overwritten.
#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "comm/agree.h"
#include "src/ckpt/checkpoint.h"
#include "src/ckpt/directory.h"
#include "src/ckpt/shard_io.h"

namespace moe::ckpt {
namespace {

// A contiguous range this rank needs, and where its element `key.begin` goes.
struct Target {
  RecordKey key;
  float* dst = nullptr;
};

using TensorKey = std::tuple<std::string, std::string, int64_t>;  // kind, name, expert
TensorKey key_of(const RecordKey& k) { return {k.kind, k.name, k.expert}; }

std::string describe(const RecordKey& k) {
  std::string s = k.kind + " of " + k.name;
  if (k.expert >= 0) s += " (expert " + std::to_string(k.expert) + ")";
  return s + " elements [" + std::to_string(k.begin) + ", " + std::to_string(k.end) + ")";
}

struct Staged {
  std::vector<std::pair<Tensor, Tensor>> pairs;  // (live, host copy being filled)
  std::vector<Target> targets;
  Tensor stage(const Tensor& live) {
    Tensor s = Tensor::zeros(live.shape(), DType::F32, Device::CPU);
    pairs.push_back({live, s});
    return s;
  }
};

// The targets of this rank at the current layout.
void plan_targets(TrainState& st, const Manifest& m, Staged& sg) {
  optim::ParamStore& ps = *st.params;
  Tensor dense = sg.stage(ps.values(false)), experts = sg.stage(ps.values(true));
  std::vector<std::pair<std::string, Tensor>> dstate, estate;
  if (st.optimizer) {
    const bool adam = st.config->optim.name == "adamw";
    for (bool e : {false, true}) {
      optim::SlotState& s = st.optimizer->state(e);
      auto& out = e ? estate : dstate;
      if (adam)
        out = {{"adam_m", sg.stage(s.m)}, {"adam_v", sg.stage(s.v)}};
      else
        out = {{"momentum", sg.stage(s.m)}};
    }
  }
  const int64_t sb = st.optimizer ? st.optimizer->shard_begin() : 0;
  const int64_t se = st.optimizer ? st.optimizer->shard_end() : 0;
  auto add = [&](const std::string& kind, const std::string& name, int64_t expert, int64_t b,
                 int64_t e, const Tensor& buf, int64_t at) {
    sg.targets.push_back({{kind, name, expert, b, e}, buf.data<float>() + at});
  };
  for (const optim::Param& p : ps.params()) {
    const int64_t n = p.numel();
    if (!p.expert) {
      add("value", p.name, -1, 0, n, dense, p.offset);
      const int64_t a = std::max(sb, p.offset), b = std::min(se, p.offset + n);
      if (a < b)
        for (auto& [kind, buf] : dstate)
          add(kind, p.name, -1, a - p.offset, b - p.offset, buf, a - sb);
      continue;
    }
    const int64_t per = n / p.shape[0];
    for (int64_t u = 0; u < p.shape[0]; ++u) {
      const int64_t g = p.expert_offset + u, at = p.offset + u * per;
      add("value", p.name, g, 0, per, experts, at);
      for (auto& [kind, buf] : estate) add(kind, p.name, g, 0, per, buf, at);
    }
  }
  for (size_t l = 0; l < st.expert_bias.size(); ++l) {
    Tensor b = sg.stage(st.expert_bias[l]);
    add("expert_bias", m.bias_names[l], -1, 0, b.numel(), b, 0);
  }
}

// The current model must have exactly the manifest's tensors, with the same global shapes.
void check_tensors(const TrainState& st, const Manifest& m, const std::string& mpath) {
  std::map<std::string, const ParamInfo*> saved;
  for (const ParamInfo& p : m.params) saved[p.name] = &p;
  const auto& params = st.params->params();
  for (const optim::Param& p : params) {
    auto it = saved.find(p.name);
    if (it == saved.end())
      throw InputError(mpath + ": the checkpoint has no tensor " + p.name, true);
    Shape global = p.shape;
    if (p.expert) global[0] = st.config->moe.experts;
    if (global != it->second->shape || p.expert != it->second->expert)
      throw InputError(mpath + ": tensor " + p.name + " has shape " + shape_str(it->second->shape) +
                           " in the checkpoint, " + shape_str(global) + " in this model",
                       true);
  }
  if (params.size() != m.params.size())
    throw InputError(mpath + ": the checkpoint has " + std::to_string(m.params.size()) +
                         " tensors, this model " + std::to_string(params.size()),
                     true);
  if (m.bias_names.size() != st.expert_bias.size())
    throw InputError(mpath + ": the checkpoint has " + std::to_string(m.bias_names.size()) +
                         " expert-bias tensors, this model " +
                         std::to_string(st.expert_bias.size()),
                     true);
  if (st.optimizer && m.layout.optimizer != st.config->optim.name)
    throw InputError(mpath + ": layout.optimizer is \"" + m.layout.optimizer +
                         "\" but optim.name is \"" + st.config->optim.name +
                         "\": the optimizer state cannot be resumed",
                     true);
}

// Reads everything this rank needs into the staged host tensors.
void read_staged(const std::string& dir, const Manifest& m, TrainState& st, Staged& sg) {
  const std::string mpath = dir + "/manifest.toml";
  plan_targets(st, m, sg);
  std::map<TensorKey, std::vector<std::pair<int, int>>> index;  // -> (shard, record)
  for (size_t s = 0; s < m.shards.size(); ++s)
    for (size_t r = 0; r < m.shards[s].records.size(); ++r)
      index[key_of(m.shards[s].records[r])].push_back({int(s), int(r)});
  // Which records feed which target, per shard; every target must be covered exactly.
  std::map<int, std::vector<std::pair<int, int>>> plan;  // shard -> (record, target)
  for (size_t t = 0; t < sg.targets.size(); ++t) {
    const RecordKey& want = sg.targets[t].key;
    std::vector<std::pair<int64_t, int64_t>> got;
    auto it = index.find(key_of(want));
    if (it != index.end())
      for (auto [s, r] : it->second) {
        const RecordKey& k = m.shards[s].records[r];
        if (k.end <= want.begin || k.begin >= want.end) continue;
        got.push_back({k.begin, k.end});
        plan[s].push_back({r, int(t)});
      }
    std::sort(got.begin(), got.end());
    int64_t reach = want.begin;
    for (auto [b, e] : got)
      if (b <= reach) reach = std::max(reach, e);
    if (reach < want.end) throw InputError(mpath + ": no shard holds " + describe(want), true);
  }
  for (auto& [s, uses] : plan) {
    const ShardInfo& info = m.shards[s];
    const std::string file = dir + "/" + info.file;
    Shard shard = read_shard(file, info.bytes, info.checksum);
    if (shard.records.size() != info.records.size())
      throw InputError(file + ": holds " + std::to_string(shard.records.size()) +
                           " records, manifest.toml indexes " + std::to_string(info.records.size()),
                       true);
    for (auto [r, t] : uses) {
      const Record& rec = shard.records[r];
      const RecordKey& k = info.records[r];
      if (key_of(rec.key) != key_of(k) || rec.key.begin != k.begin || rec.key.end != k.end)
        throw InputError(
            file + ": record " + std::to_string(r) + " does not match its entry in manifest.toml",
            true);
      const Target& tg = sg.targets[t];
      const int64_t a = std::max(k.begin, tg.key.begin), b = std::min(k.end, tg.key.end);
      std::memcpy(tg.dst + (a - tg.key.begin), rec.data.data() + (a - k.begin),
                  size_t(b - a) * sizeof(float));
    }
  }
}

}  // namespace

Manifest peek_manifest(const std::string& path, std::string& dir) {
  dir = resolve_checkpoint(path);
  return read_manifest(dir + "/manifest.toml");
}

LoadInfo load(const std::string& path, TrainState& st, comm::ParallelContext& ctx) {
  MOE_CHECK(st.params->dtype() == DType::F32, "checkpoints load into f32 models");
  LoadInfo info;
  Staged sg;
  comm::run_agreed_rethrow(*ctx.world, [&] {
    info.manifest = peek_manifest(path, info.dir);
    const std::string mpath = info.dir + "/manifest.toml";
    check_same_model(info.manifest, mpath, *st.config, *st.table);
    check_tensors(st, info.manifest, mpath);
    read_staged(info.dir, info.manifest, st, sg);
  });
  // Every rank has all it needs: commit.
  for (auto& [live, staged] : sg.pairs) live.copy_from(staged);
  info.step = info.manifest.step;
  info.optimizer_steps = info.manifest.optimizer_steps;
  if (st.optimizer) st.optimizer->set_steps_taken(info.optimizer_steps);
  st.step = info.step;
  st.optimizer_steps = info.optimizer_steps;
  return info;
}

}  // namespace moe::ckpt
