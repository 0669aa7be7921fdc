// The parameterization table: each preset's per-group rule (parameterization_paper.cpp for mup
// and mssp, parameterization_tp.cpp for sp and jiang), then the base values, the tuned
// multipliers and the overrides, evaluated at the model's shape. Everything is recorded as
// base values and exponents of the scale multipliers so that param-table prints the formulas.
#include "src/optim/parameterization.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "src/core/error.h"
#include "src/optim/rules.h"

namespace moe::optim {
namespace {

int axis_index(const std::string& a) {
  for (int i = 0; i < kNumAxes; ++i)
    if (a == axis_name(i)) return i;
  return -1;
}

std::string fmt_exp(double x) {
  static const std::pair<double, const char*> named[] = {{0.5, "1/2"}, {-0.5, "-1/2"}, {1.5, "3/2"},
                                                         {-1.5, "-3/2"}};
  for (auto [v, s] : named)
    if (std::abs(x - v) < 1e-12) return s;
  std::ostringstream os;
  os << x;
  return os.str();
}

double eval(const ModelShape& s, const Exps& e) {
  double r = 1;
  for (int i = 0; i < kNumAxes; ++i)
    if (e.e[i] != 0) r *= std::pow(s.mult(static_cast<Axis>(i)), e.e[i]);
  return r;
}

Exps from_override(const config::Exponents& o) {
  Exps e;
  e[Axis::N] = o.N.value_or(0);
  e[Axis::Ne] = o.Ne.value_or(0);
  e[Axis::M] = o.M.value_or(0);
  e[Axis::K] = o.K.value_or(0);
  e[Axis::L] = o.L.value_or(0);
  return e;
}

// Gate, aggregation, balancing and attention scale of each preset, then the [moe] overrides.
LayerRules layer_rules(const config::Config& c, const ModelShape& sh) {
  const std::string& p = c.parameterization.preset;
  const bool sp = p == "sp", jiang = p == "jiang", paper = p == "mup" || p == "mssp";
  LayerRules L;
  // The paper does not scale depth: its presets leave the residual alone unless asked.
  L.depth_alpha = jiang ? 1.0 : 0.0;
  if (c.parameterization.depth_alpha) {
    L.depth_alpha = *c.parameterization.depth_alpha;
    L.overridden.push_back("depth_alpha");
  }
  L.residual_mult = std::pow(sh.mult(Axis::L), -L.depth_alpha);
  L.gate = sp ? ops::Gate::Softmax : ops::Gate::Sigmoid;
  L.renormalize = sp;
  L.expert_bias = jiang;
  L.aux_selected = paper;
  L.base_top_k = c.moe.base_top_k;
  L.gate_alpha = sp ? 0.0 : 1.0;  // jiang's mean over K is (1/K)^1 with base_top_k = 1
  if (jiang) L.base_top_k = 1;
  const double K = double(c.moe.top_k);
  L.c_agg = std::pow(double(L.base_top_k) / K, L.gate_alpha);
  if (c.moe.gate) {
    L.gate = *c.moe.gate == "sigmoid" ? ops::Gate::Sigmoid : ops::Gate::Softmax;
    L.overridden.push_back("gate");
  }
  if (c.moe.renormalize) {
    L.renormalize = *c.moe.renormalize;
    L.overridden.push_back("renormalize");
  }
  if (c.moe.gate_alpha) {
    L.gate_alpha = *c.moe.gate_alpha;
    L.base_top_k = c.moe.base_top_k;
    L.c_agg = std::pow(double(L.base_top_k) / K, L.gate_alpha);
    L.overridden.push_back("gate_alpha");
  }
  if (c.moe.aggregation) {
    L.c_agg = *c.moe.aggregation == "mean" ? 1.0 / K : 1.0;
    L.gate_alpha = *c.moe.aggregation == "mean" ? 1.0 : 0.0;
    L.base_top_k = 1;
    L.overridden.push_back("aggregation");
  }
  if (c.moe.expert_bias) {
    L.expert_bias = *c.moe.expert_bias;
    L.overridden.push_back("expert_bias");
  }
  if (c.moe.aux_probs) {
    L.aux_selected = *c.moe.aux_probs == "selected";
    L.overridden.push_back("aux_probs");
  }
  const double d_head = double(c.model.width) / double(c.model.heads);
  // sp and the paper's code: 1/sqrt(d_head) (the paper keeps d_head fixed); jiang: muP's
  // sqrt(d_head0) / d_head.
  L.attn_scale = jiang ? std::sqrt(sh.base_d_head) / d_head : 1.0 / std::sqrt(d_head);
  return L;
}

}  // namespace

Fans group_fans(Group g) {
  switch (g) {
    case Group::Embed: return {"", "N"};
    case Group::PosEmbed: return {"", "N"};
    case Group::AttnQKV: return {"N", "N"};
    case Group::AttnOut: return {"N", "N"};
    case Group::Router: return {"N", "M"};
    case Group::ExpertUp: return {"N", "Ne"};
    case Group::ExpertGate: return {"N", "Ne"};
    case Group::ExpertDown: return {"Ne", "N"};
    case Group::Norm: return {"", "N"};
    case Group::Unembed: return {"N", ""};
    case Group::MlpUp: return {"N", "F"};
    case Group::MlpDown: return {"F", "N"};
  }
  return {"", ""};
}

Exps fan_exps(const Fans& f, double x, double y) {
  Exps e;
  // The dense MLP width F grows with N: its fan scales as m_N.
  auto index = [](const char* a) { return std::string(a) == "F" ? int(Axis::N) : axis_index(a); };
  if (int i = index(f.in); i >= 0) e.e[i] += x;
  if (int i = index(f.out); i >= 0) e.e[i] += y;
  return e;
}

int64_t fan_dim(const ModelShape& s, const char* axis, bool base) {
  const Shape5& v = base ? s.base : s.s;
  std::string a = axis;
  if (a == "N") return v.N;
  if (a == "Ne") return v.Ne;
  if (a == "M") return v.M;
  if (a == "F") return base ? std::max<int64_t>(1, std::llround(s.mlp_ratio * double(v.N))) : s.F;
  return 0;
}

std::string Exps::str() const {
  std::string out;
  for (int i = 0; i < kNumAxes; ++i) {
    if (e[i] == 0) continue;
    out += std::string(out.empty() ? "" : " ") + "m_" + axis_name(i);
    if (e[i] != 1) out += "^" + fmt_exp(e[i]);
  }
  return out.empty() ? "1" : out;
}

double ModelShape::mult(Axis a) const {
  switch (a) {
    case Axis::N: return double(s.N) / base.N;
    case Axis::Ne: return double(s.Ne) / base.Ne;
    case Axis::M: return double(s.M) / base.M;
    case Axis::K: return double(s.K) / base.K;
    case Axis::L: return double(s.L) / base.L;
  }
  return 1;
}

ModelShape model_shape(const config::Config& c) {
  ModelShape s;
  s.s = {c.model.width, c.moe.expert_width, c.moe.experts, c.moe.top_k, c.model.depth};
  const auto& b = c.parameterization.base;
  s.base = {b.width, b.expert_width, b.experts, b.top_k, b.depth};
  s.V = c.model.vocab;
  s.T = c.model.seq_len;
  s.H = c.model.heads;
  s.F = config::mlp_width(c.model);
  s.mlp_ratio = double(s.F) / double(c.model.width);
  // Unless base.heads is given, the head size is taken to be the base's (heads grow with the
  // width), and the muP logit scale sqrt(d_head0) / d_head reduces to 1 / sqrt(d_head).
  const double d_head = double(c.model.width) / double(c.model.heads);
  s.base_d_head = c.parameterization.base.heads ? double(b.width) / double(*c.parameterization.base.heads) : d_head;
  return s;
}

std::optional<Regime> config_regime(const config::Config& c) {
  const auto& p = c.parameterization;
  if (p.regime != "auto") return regime_from_name(p.regime);
  return infer_regime({c.model.width, c.moe.expert_width, c.moe.experts, c.moe.top_k, p.base.width,
                       p.base.expert_width, p.base.experts, p.base.top_k},
                      nullptr);
}

ParamTable make_param_table(const config::Config& c) {
  ParamTable t;
  const auto& pc = c.parameterization;
  t.preset = pc.preset;
  t.optimizer = c.optim.name == "sgd" ? OptimizerKind::SGD : OptimizerKind::Adam;
  t.shape = model_shape(c);
  const ModelShape& sh = t.shape;
  const bool paper = pc.preset == "mup" || pc.preset == "mssp";
  const bool adam = t.optimizer == OptimizerKind::Adam;
  MOE_CHECK(paper || pc.preset == "sp" || pc.preset == "jiang", "unknown preset ", pc.preset);
  const std::optional<Regime> regime = config_regime(c);
  if (regime) t.regime = regime_name(*regime);
  if (paper && !regime)
    MOE_INPUT_ERROR("parameterization.regime: preset ", pc.preset, " needs a regime (I, II or III)");
  t.layer = layer_rules(c, sh);

  const int64_t moe_layers = config::moe_layer_count(c.moe, c.model.depth);
  for (int gi = 0; gi < kNumGroups; ++gi) {
    Group g = static_cast<Group>(gi);
    GroupRule& r = t.groups[gi];
    r.group = g;
    switch (g) {
      case Group::PosEmbed: r.in_model = c.model.position == "learned"; break;
      case Group::AttnQKV:
      case Group::AttnOut: r.in_model = c.model.attention; break;
      case Group::ExpertGate: r.in_model = c.moe.activation == "swiglu" && moe_layers > 0; break;
      case Group::Router:
      case Group::ExpertUp:
      case Group::ExpertDown: r.in_model = moe_layers > 0; break;
      case Group::MlpUp:
      case Group::MlpDown: r.in_model = moe_layers < c.model.depth; break;
      default: break;
    }
    Fans f = group_fans(g);
    r.in_axis = f.in;
    r.out_axis = f.out;
    r.fan_in = *f.in ? fan_dim(sh, f.in, false) : (g == Group::PosEmbed ? sh.T : sh.V);
    r.fan_out = *f.out ? fan_dim(sh, f.out, false) : sh.V;
    if (g == Group::AttnQKV) r.fan_out *= 3;
    if (g == Group::Norm) r.fan_in = 0;

    Rule rule = paper ? paper_rule(g, *regime, pc.preset == "mssp", adam, sh, c)
                      : tp_rule(g, pc.preset, adam, t.layer.depth_alpha, sh, c);
    if (paper && pc.depth_alpha && (is_dense_matrix(g) || g == Group::Router || is_expert_group(g))) {
      // Depth scaling asked for: the hidden-LR correction of depth-muP / CompleteP.
      rule.lr_e.add(Axis::L, adam ? t.layer.depth_alpha - 1 : 2 * t.layer.depth_alpha - 1);
    }
    r.kind = rule.kind;
    r.init_kind = rule.init_kind;
    r.init_e = rule.init_e;
    r.lr_e = rule.lr_e;

    // base values, then the tuned multipliers
    const std::string name(group_name(g));
    r.sigma = rule.sigma;
    r.eta = c.optim.lr;
    if (auto gb = pc.groups.find(name); gb != pc.groups.end()) {
      if (gb->second.init_std) r.sigma = *gb->second.init_std;
      if (gb->second.lr) r.eta = *gb->second.lr;
      if (gb->second.lr_mult) r.eta = c.optim.lr * *gb->second.lr_mult;
    }
    if (auto m = pc.multipliers.find(name); m != pc.multipliers.end()) {
      r.init_mult = m->second.init.value_or(1.0);
      r.lr_mult = m->second.lr.value_or(1.0);
      r.sigma *= r.init_mult;
      r.eta *= r.lr_mult;
    }
    const bool global_eps = !paper || pc.global_eps;
    r.base_eps = c.optim.eps * (global_eps ? 1.0 : rule.eps_base);
    if (!global_eps || (!paper && pc.scale_eps)) r.eps_e = rule.eps_e;
    r.base_wd = (!rule.lr_corrected_decay && g == Group::Norm) ? 0.0 : c.optim.weight_decay;

    // overrides replace whole entries (unset exponents are 0)
    auto ov = pc.overrides.find(name);
    if (ov != pc.overrides.end()) {
      const config::GroupOverride& o = ov->second;
      if (o.init) { r.init_e = from_override(*o.init); r.overridden.push_back("init"); }
      if (o.multiplier) { r.mult_e = from_override(*o.multiplier); r.overridden.push_back("multiplier"); }
      if (o.lr) { r.lr_e = from_override(*o.lr); r.overridden.push_back("lr"); }
      if (o.eps) { r.eps_e = from_override(*o.eps); r.overridden.push_back("eps"); }
      if (o.weight_decay) { r.wd_e = from_override(*o.weight_decay); r.overridden.push_back("weight_decay"); }
      if (o.zero_init) {
        if (*o.zero_init) {
          r.init_kind = "zero";
        } else if (r.init_kind == "zero") {
          if (r.sigma <= 0)
            MOE_INPUT_ERROR("parameterization.overrides.", name, ".zero_init = false: the preset starts ", name,
                            " at zero; give parameterization.groups.", name, ".init_std as well");
          r.init_kind = "normal";
        }
        r.overridden.push_back("zero_init");
      }
    }

    const bool has_std = r.init_kind == "normal" || r.init_kind == "tied";
    r.init_std = has_std ? r.sigma * eval(sh, r.init_e) : 0.0;
    r.multiplier = eval(sh, r.mult_e);
    r.lr = r.eta * eval(sh, r.lr_e);
    r.eps = r.base_eps * eval(sh, r.eps_e);
    if (rule.lr_corrected_decay && !(ov != pc.overrides.end() && ov->second.weight_decay)) {
      // The paper's code decays every tensor with lambda / lr_scale, so that lr * decay =
      // eta * lambda whatever the group's learning rate (multipliers included).
      r.weight_decay = r.base_wd * c.optim.lr / r.lr;
    } else {
      r.weight_decay = r.base_wd * eval(sh, r.wd_e);
    }
    r.effective_decay = r.lr * r.weight_decay;
  }
  t.layer.output_mult = t.groups[static_cast<int>(Group::Unembed)].multiplier;
  return t;
}

}  // namespace moe::optim
