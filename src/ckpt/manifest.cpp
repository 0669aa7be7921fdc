// Writing, reading and checking manifest.toml (TOML++). The config and the parameterization
// table are stored as multi-line literal strings so the manifest stays readable by eye.
#include "src/ckpt/manifest.h"

#include <toml++/toml.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "src/ckpt/checksum.h"
#include "src/ckpt/manifest_legacy.h"
#include "src/metrics/json.h"

namespace moe::ckpt {
namespace {

// ---- writing ----

toml::array int_array(const std::vector<int64_t>& v) {
  toml::array a;
  for (int64_t x : v) a.push_back(x);
  return a;
}

// key = '''...''' keeps newlines verbatim; TOML++'s basic-string fallback covers text that
// happens to contain the delimiter.
std::string multiline(const std::string& key, const std::string& text) {
  if (text.find("'''") == std::string::npos && text.find('\r') == std::string::npos)
    return key + " = '''\n" + text + "'''\n";
  toml::table t;
  t.insert_or_assign(key, text);
  std::ostringstream os;
  os << t << "\n";
  return os.str();
}

// ---- reading ----

// No tensor of a loadable checkpoint has more elements than this (2^48: 1 PiB of f32).
constexpr int64_t kMaxElements = int64_t(1) << 48;

struct Reader {
  const std::string& path;
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path + ": " + what + " (not a valid checkpoint manifest)", true);
  }
  template <class T>
  T get(const toml::table& t, const std::string& key, const std::string& where = "") const {
    const toml::node* n = t.get(key);
    std::string full = where.empty() ? key : where + "." + key;
    if (!n) fail("missing key " + full);
    if constexpr (std::is_same_v<T, int64_t>) {
      if (!n->is_integer()) fail(full + " must be an integer");
      return *n->value<int64_t>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) fail(full + " must be true or false");
      return *n->value<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!n->is_string()) fail(full + " must be a string");
      return *n->value<std::string>();
    } else if constexpr (std::is_same_v<T, const toml::table*>) {
      if (!n->is_table()) fail(full + " must be a table");
      return n->as_table();
    } else {
      static_assert(std::is_same_v<T, const toml::array*>);
      if (!n->is_array()) fail(full + " must be an array");
      return n->as_array();
    }
  }
  const toml::table& table_at(const toml::array& a, size_t i, const std::string& where) const {
    if (!a[i].is_table()) fail(where + "[" + std::to_string(i) + "] must be a table");
    return *a[i].as_table();
  }
};

std::string value_text(const toml::table& t, const std::string& key) {
  auto v = t[key];
  if (!v) return "(unset)";
  std::ostringstream os;
  os << v;
  return os.str();
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string c; std::getline(ss, c, ',');) out.push_back(c);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

}  // namespace

ForwardConstants forward_constants(const config::Config& cfg, const optim::ParamTable& t) {
  ForwardConstants f;
  f.attention = cfg.model.attention;
  f.activation = cfg.moe.activation;
  f.gelu = config::exact_gelu(cfg.moe) ? "erf" : "tanh";
  f.gate = t.layer.gate == ops::Gate::Sigmoid ? "sigmoid" : "softmax";
  f.renormalize = t.layer.renormalize;
  f.expert_bias = t.layer.expert_bias;
  f.residual_mult = t.layer.residual_mult;
  f.c_agg = t.layer.c_agg;
  f.attn_scale = t.layer.attn_scale;
  f.norm_eps = cfg.model.norm_eps;
  f.top_k = cfg.moe.top_k;
  f.capacity_factor = cfg.moe.capacity_factor;
  f.aux_loss = cfg.moe.aux_loss;
  f.z_loss = cfg.moe.z_loss;
  for (const optim::GroupRule& r : t.groups)
    f.multiplier.push_back({std::string(optim::group_name(r.group)), r.multiplier});
  return f;
}

std::string forward_constants_json(const ForwardConstants& f) {
  metrics::Json j;
  j.begin_object().kv("attention", f.attention).kv("activation", f.activation).kv("gelu", f.gelu);
  j.kv("gate", f.gate);
  j.kv("renormalize", f.renormalize)
      .kv("expert_bias", f.expert_bias)
      .kv("residual_mult", f.residual_mult);
  j.kv("c_agg", f.c_agg)
      .kv("attn_scale", f.attn_scale)
      .kv("norm_eps", f.norm_eps)
      .kv("top_k", f.top_k);
  j.kv("capacity_factor", f.capacity_factor).kv("aux_loss", f.aux_loss).kv("z_loss", f.z_loss);
  j.key("multiplier").begin_object();
  for (const auto& [g, v] : f.multiplier) j.kv(g, v);
  j.end_object().end_object();
  return j.str();
}

std::string manifest_to_toml(const Manifest& m) {
  toml::table top;
  top.insert_or_assign("format", "moe-checkpoint");
  top.insert_or_assign("version", m.version);
  top.insert_or_assign("step", m.step);
  top.insert_or_assign("optimizer_steps", m.optimizer_steps);
  top.insert_or_assign("run_id", m.run_id);
  top.insert_or_assign("segment", m.segment);
  top.insert_or_assign("dtype", "f32");
  top.insert_or_assign("checksum", "xxh64");
  top.insert_or_assign("experts", m.experts);
  toml::array bias;
  for (const std::string& b : m.bias_names) bias.push_back(b);
  top.insert_or_assign("expert_bias", std::move(bias));

  toml::table rest;
  rest.insert_or_assign("layout", toml::table{{"world", m.layout.world},
                                              {"ep", m.layout.ep},
                                              {"dp", m.layout.dp},
                                              {"zero1", m.layout.zero1},
                                              {"optimizer", m.layout.optimizer}});
  rest.insert_or_assign("dense", toml::table{{"count", m.dense_count}});
  const ForwardConstants& f = m.forward;
  toml::table mult;
  for (const auto& [g, v] : f.multiplier) mult.insert_or_assign(g, v);
  rest.insert_or_assign("forward", toml::table{{"attention", f.attention},
                                               {"activation", f.activation},
                                               {"gelu", f.gelu},
                                               {"gate", f.gate},
                                               {"renormalize", f.renormalize},
                                               {"expert_bias", f.expert_bias},
                                               {"residual_mult", f.residual_mult},
                                               {"c_agg", f.c_agg},
                                               {"attn_scale", f.attn_scale},
                                               {"norm_eps", f.norm_eps},
                                               {"top_k", f.top_k},
                                               {"capacity_factor", f.capacity_factor},
                                               {"aux_loss", f.aux_loss},
                                               {"z_loss", f.z_loss},
                                               {"multiplier", std::move(mult)}});
  toml::array params;
  for (const ParamInfo& p : m.params) {
    toml::table t{{"name", p.name},
                  {"group", p.group},
                  {"shape", int_array(p.shape)},
                  {"expert", p.expert},
                  {"numel", p.numel()}};
    if (!p.expert) t.insert_or_assign("offset", p.offset);
    params.push_back(std::move(t));
  }
  rest.insert_or_assign("params", std::move(params));
  toml::array shards;
  for (const ShardInfo& s : m.shards) {
    toml::array recs;
    for (const RecordKey& k : s.records) {
      toml::table r{{"kind", k.kind},
                    {"name", k.name},
                    {"expert", k.expert},
                    {"begin", k.begin},
                    {"end", k.end}};
      r.is_inline(true);
      recs.push_back(std::move(r));
    }
    shards.push_back(toml::table{{"file", s.file},
                                 {"rank", s.rank},
                                 {"bytes", s.bytes},
                                 {"checksum", hex64(s.checksum)},
                                 {"records", std::move(recs)}});
  }
  rest.insert_or_assign("shards", std::move(shards));

  std::ostringstream os;
  os << "# moe checkpoint manifest (docs/model.md describes the tensors)\n" << top << "\n";
  os << multiline("config", m.config) << multiline("param_table", m.param_table) << "\n"
     << rest << "\n";
  return os.str();
}

Manifest read_manifest(const std::string& path) {
  Reader rd{path};
  if (!std::filesystem::is_regular_file(path))
    throw InputError(path + ": manifest not found", true);
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "line " << e.source().begin.line << ": " << e.description();
    rd.fail(os.str());
  }
  Manifest m;
  if (rd.get<std::string>(root, "format") != "moe-checkpoint")
    rd.fail("format is not \"moe-checkpoint\"");
  m.version = rd.get<int64_t>(root, "version");
  if (m.version != kFormatVersion)
    throw InputError(path + ": checkpoint format version " + std::to_string(m.version) +
                         ", this build reads " + std::to_string(kFormatVersion),
                     true);
  m.step = rd.get<int64_t>(root, "step");
  m.optimizer_steps = rd.get<int64_t>(root, "optimizer_steps");
  // Optional: checkpoints from before run identities have neither.
  if (root.get("run_id")) m.run_id = rd.get<std::string>(root, "run_id");
  if (root.get("segment")) m.segment = rd.get<int64_t>(root, "segment");
  m.experts = rd.get<int64_t>(root, "experts");
  m.config = rd.get<std::string>(root, "config");
  m.param_table = rd.get<std::string>(root, "param_table");
  read_legacy(m, root);
  if (m.step < 0 || m.experts < 1) rd.fail("step or experts out of range");
  if (m.segment < 1) rd.fail("segment out of range");
  for (const toml::node& n : *rd.get<const toml::array*>(root, "expert_bias")) {
    if (!n.is_string()) rd.fail("expert_bias must hold strings");
    m.bias_names.push_back(*n.value<std::string>());
  }
  const toml::table& lay = *rd.get<const toml::table*>(root, "layout");
  m.layout.world = rd.get<int64_t>(lay, "world", "layout");
  m.layout.ep = rd.get<int64_t>(lay, "ep", "layout");
  m.layout.dp = rd.get<int64_t>(lay, "dp", "layout");
  m.layout.zero1 = rd.get<bool>(lay, "zero1", "layout");
  m.layout.optimizer = rd.get<std::string>(lay, "optimizer", "layout");
  m.dense_count = rd.get<int64_t>(*rd.get<const toml::table*>(root, "dense"), "count", "dense");

  std::set<std::string> names(m.bias_names.begin(), m.bias_names.end());
  const toml::array& params = *rd.get<const toml::array*>(root, "params");
  for (size_t i = 0; i < params.size(); ++i) {
    const toml::table& t = rd.table_at(params, i, "params");
    ParamInfo p;
    p.name = rd.get<std::string>(t, "name", "params");
    p.group = rd.get<std::string>(t, "group", "params");
    p.expert = rd.get<bool>(t, "expert", "params");
    // Sizes are checked before any product or sum of them is formed: a hostile or corrupt
    // manifest must not overflow int64 (found by tests/fuzz/fuzz_manifest).
    int64_t numel = 1;
    for (const toml::node& d : *rd.get<const toml::array*>(t, "shape", "params")) {
      if (!d.is_integer() || *d.value<int64_t>() < 0)
        rd.fail("params.shape of " + p.name + " must hold sizes");
      p.shape.push_back(*d.value<int64_t>());
      if (__builtin_mul_overflow(numel, p.shape.back(), &numel) || numel > kMaxElements)
        rd.fail("params.shape of " + p.name + " is too large");
    }
    if (p.shape.empty() || (p.expert && p.shape[0] != m.experts))
      rd.fail("bad shape for " + p.name);
    if (!p.expert) {
      p.offset = rd.get<int64_t>(t, "offset", "params");
      if (p.offset < 0 || p.offset > m.dense_count || numel > m.dense_count - p.offset)
        rd.fail(p.name + " lies outside the dense buffer");
    }
    if (!names.insert(p.name).second) rd.fail("duplicate tensor " + p.name);
    m.params.push_back(std::move(p));
  }

  const toml::array& shards = *rd.get<const toml::array*>(root, "shards");
  std::set<std::string> files;
  for (size_t i = 0; i < shards.size(); ++i) {
    const toml::table& t = rd.table_at(shards, i, "shards");
    ShardInfo s;
    s.file = rd.get<std::string>(t, "file", "shards");
    if (s.file.empty() || s.file.find('/') != std::string::npos || !files.insert(s.file).second)
      rd.fail("bad or duplicate shard file name \"" + s.file + "\"");
    s.rank = rd.get<int64_t>(t, "rank", "shards");
    s.bytes = rd.get<int64_t>(t, "bytes", "shards");
    if (!parse_hex64(rd.get<std::string>(t, "checksum", "shards"), s.checksum))
      rd.fail("shards.checksum of " + s.file + " is not 16 hex digits");
    const toml::array& recs = *rd.get<const toml::array*>(t, "records", "shards");
    for (size_t j = 0; j < recs.size(); ++j) {
      const toml::table& r = rd.table_at(recs, j, "shards.records");
      RecordKey k;
      k.kind = rd.get<std::string>(r, "kind", "shards.records");
      k.name = rd.get<std::string>(r, "name", "shards.records");
      k.expert = rd.get<int64_t>(r, "expert", "shards.records");
      k.begin = rd.get<int64_t>(r, "begin", "shards.records");
      k.end = rd.get<int64_t>(r, "end", "shards.records");
      if (!names.count(k.name)) rd.fail(s.file + " indexes unknown tensor " + k.name);
      if (k.begin < 0 || k.end <= k.begin || k.expert < -1 || k.expert >= m.experts)
        rd.fail(s.file + " indexes a bad range of " + k.name);
      s.records.push_back(std::move(k));
    }
    m.shards.push_back(std::move(s));
  }
  return m;
}

void check_same_model(const Manifest& m, const std::string& path, const config::Config& cfg,
                      const optim::ParamTable& table) {
  toml::table saved, now;
  try {
    saved = toml::parse(m.config, path);
  } catch (const toml::parse_error& e) {
    throw InputError(path + ": the stored config does not parse: " + std::string(e.description()),
                     true);
  }
  now = toml::parse(config::to_toml(cfg));
  for (const char* section : {"model", "moe"}) {
    const toml::table* a = saved[section].as_table();
    const toml::table* b = now[section].as_table();
    if (!a)
      throw InputError(path + ": the stored config has no [" + std::string(section) + "] table",
                       true);
    std::set<std::string> keys;
    for (auto&& [k, v] : *a) keys.insert(std::string(k.str()));
    for (auto&& [k, v] : *b) keys.insert(std::string(k.str()));
    for (const std::string& k : keys) {
      // Routing and loss settings that no tensor's shape or value depends on: an eval or a
      // resumed run may change them (capacity drops, the aux and z loss weights, the bias rate).
      if (section == std::string("moe") &&
          (k == "capacity_factor" || k == "aux_loss" || k == "z_loss" || k == "bias_update_rate"))
        continue;
      std::string x = value_text(*a, k), y = value_text(*b, k);
      if (x != y)
        throw InputError(path + ": " + section + "." + k + " differs: the checkpoint has " + x +
                             ", the config has " + y +
                             " (a checkpoint loads only into the same model shape" + activation_hint(m, k) + ")",
                         true);
    }
  }
  // The table, where it shapes the forward pass: a checkpoint's weights belong to these fans
  // and multipliers. Learning rates, Adam eps, decay and init follow [optim] and
  // [parameterization] keys, which a resume may change only when allowed (src/run/
  // config_changes.h). Numbers compare to 6 significant digits, so that tables printed with
  // fewer digits (older checkpoints) still match.
  const auto rows = [](const std::string& csv) {
    std::map<std::string, std::map<std::string, std::string>> out;
    auto ls = lines(csv);
    if (ls.empty()) return out;
    const std::vector<std::string> header = csv_cells(ls[0]);
    for (size_t i = 1; i < ls.size(); ++i) {
      const std::vector<std::string> c = csv_cells(ls[i]);
      if (c.empty()) continue;
      for (size_t j = 0; j < header.size(); ++j) out[c[0]][header[j]] = j < c.size() ? c[j] : "";
    }
    return out;
  };
  const auto same = [](const std::string& x, const std::string& y) {
    if (x == y) return true;
    char* ex = nullptr;
    char* ey = nullptr;
    const double a = std::strtod(x.c_str(), &ex), b = std::strtod(y.c_str(), &ey);
    if (x.empty() || y.empty() || *ex || *ey) return false;
    return std::fabs(a - b) <= 1e-6 * std::max(std::fabs(a), std::fabs(b));
  };
  auto A = rows(m.param_table), B = rows(optim::format_table(table, "csv"));
  std::set<std::string> groups;
  for (const auto& [g, v] : A) groups.insert(g);
  for (const auto& [g, v] : B) groups.insert(g);
  for (const std::string& g : groups) {
    const auto a = A.find(g), b = B.find(g);
    if (a == A.end() || b == B.end())
      throw InputError(path + ": parameterization table group " + g + " is only in the " +
                           (a == A.end() ? "config" : "checkpoint") +
                           " (a checkpoint loads only into the same parameterization)",
                       true);
    // A column an older table lacks is not compared.
    for (const char* col : {"kind", "fan_in", "fan_out", "multiplier", "multiplier_rule", "in_model"}) {
      const auto x = a->second.find(col), y = b->second.find(col);
      if (x == a->second.end() || y == b->second.end() || same(x->second, y->second)) continue;
      throw InputError(path + ": parameterization table " + g + "." + col + " differs: the checkpoint has " +
                           x->second + ", the config has " + y->second +
                           " (a checkpoint loads only into the same parameterization)",
                       true);
    }
  }
}

}  // namespace moe::ckpt
