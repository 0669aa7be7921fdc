// The rules of parameterization.md as data: each group's init/LR exponents come from its kind
// (the muP core) and the preset's column; overrides then replace single entries. Everything is
// recorded as exponents of the scale multipliers so that param-table can print the formulas.
#include "src/optim/parameterization.h"

#include <cmath>
#include <sstream>

#include "src/core/error.h"

namespace moe::optim {
namespace {

struct Fans {
  const char* in;   // axis name of fan_in, or "" when fixed (V, T)
  const char* out;  // axis name of fan_out, or ""
};

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
  }
  return {"", ""};
}

int axis_index(const std::string& a) {
  for (int i = 0; i < kNumAxes; ++i)
    if (a == axis_name(i)) return i;
  return -1;
}

// a^x b^y as axis exponents, where a and b are the fan_in and fan_out multipliers.
Exps fan_exps(const Fans& f, double x, double y) {
  Exps e;
  if (int i = axis_index(f.in); i >= 0) e.e[i] += x;
  if (int i = axis_index(f.out); i >= 0) e.e[i] += y;
  return e;
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

int64_t dim_of(const ModelShape& s, const char* axis, bool base) {
  const Shape5& v = base ? s.base : s.s;
  std::string a = axis;
  if (a == "N") return v.N;
  if (a == "Ne") return v.Ne;
  if (a == "M") return v.M;
  return 0;
}

double eval(const ModelShape& s, const Exps& e) {
  double r = 1;
  for (int i = 0; i < kNumAxes; ++i)
    if (e.e[i] != 0) r *= std::pow(s.mult(static_cast<Axis>(i)), e.e[i]);
  return r;
}

bool is_block_matrix(Group g) {
  return g == Group::AttnQKV || g == Group::AttnOut || g == Group::Router || is_expert_group(g);
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

}  // namespace

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
  // Unless base.heads is given, the head size is taken to be the base's (heads grow with the
  // width), and the muP logit scale sqrt(d_head0) / d_head reduces to 1 / sqrt(d_head).
  const double d_head = double(c.model.width) / double(c.model.heads);
  s.base_d_head = c.parameterization.base.heads ? double(b.width) / double(*c.parameterization.base.heads) : d_head;
  return s;
}

ParamTable make_param_table(const config::Config& c) {
  ParamTable t;
  const auto& pc = c.parameterization;
  t.preset = pc.preset;
  t.optimizer = c.optim.name == "sgd" ? OptimizerKind::SGD : OptimizerKind::Adam;
  t.shape = model_shape(c);
  const ModelShape& sh = t.shape;
  const bool sp = pc.preset == "sp", mup = pc.preset == "mup", mssp = pc.preset == "mssp";
  const bool adam = t.optimizer == OptimizerKind::Adam;
  MOE_CHECK(sp || mup || mssp, "unknown preset ", pc.preset);

  // ---- layer constants ----
  LayerRules& L = t.layer;
  L.depth_alpha = sp ? 0.0 : mup ? 0.5 : 1.0;
  if (pc.depth_alpha) {
    L.depth_alpha = *pc.depth_alpha;
    L.overridden.push_back("depth_alpha");
  }
  L.residual_mult = std::pow(sh.mult(Axis::L), -L.depth_alpha);
  L.gate = mssp ? ops::Gate::Sigmoid : ops::Gate::Softmax;
  L.renormalize = !mssp;
  L.c_agg = mssp ? 1.0 / c.moe.top_k : 1.0;
  L.expert_bias = mssp;
  if (c.moe.gate) {
    L.gate = *c.moe.gate == "sigmoid" ? ops::Gate::Sigmoid : ops::Gate::Softmax;
    L.overridden.push_back("gate");
  }
  if (c.moe.renormalize) {
    L.renormalize = *c.moe.renormalize;
    L.overridden.push_back("renormalize");
  }
  if (c.moe.aggregation) {
    L.c_agg = *c.moe.aggregation == "mean" ? 1.0 / c.moe.top_k : 1.0;
    L.overridden.push_back("aggregation");
  }
  if (c.moe.expert_bias) {
    L.expert_bias = *c.moe.expert_bias;
    L.overridden.push_back("expert_bias");
  }
  const double d_head = double(c.model.width) / c.model.heads;
  L.attn_scale = sp ? 1.0 / std::sqrt(d_head) : std::sqrt(sh.base_d_head) / d_head;

  // ---- groups ----
  for (int gi = 0; gi < kNumGroups; ++gi) {
    Group g = static_cast<Group>(gi);
    GroupRule& r = t.groups[gi];
    r.group = g;
    Fans f = group_fans(g);
    r.in_axis = f.in;
    r.out_axis = f.out;
    r.fan_in = *f.in ? dim_of(sh, f.in, false) : (g == Group::PosEmbed ? sh.T : sh.V);
    r.fan_out = *f.out ? dim_of(sh, f.out, false) : sh.V;
    if (g == Group::AttnQKV) r.fan_out *= 3;
    if (g == Group::Norm) r.fan_in = 0;

    // kind under muP
    if (g == Group::Embed || g == Group::PosEmbed) r.kind = "input";
    else if (g == Group::Norm) r.kind = "vector";
    else if (g == Group::Unembed) r.kind = "output";
    else if (g == Group::Router) r.kind = sh.mult(Axis::M) != 1.0 ? "hidden" : "output";
    else r.kind = "hidden";

    // base values
    auto gb = pc.groups.find(std::string(group_name(g)));
    r.sigma = pc.init_std;
    r.eta = c.optim.lr;
    if (gb != pc.groups.end()) {
      if (gb->second.init_std) r.sigma = *gb->second.init_std;
      if (gb->second.lr) r.eta = *gb->second.lr;
      if (gb->second.lr_mult) r.eta = c.optim.lr * *gb->second.lr_mult;
    }
    r.base_eps = c.optim.eps;
    r.base_wd = g == Group::Norm ? 0.0 : c.optim.weight_decay;  // gains are not decayed
    if (g == Group::Norm) r.init_kind = "ones";

    // muP core (Tensor Programs V, Table 3) in fan multipliers a (fan_in) and b (fan_out)
    Exps init, lr_adam, lr_sgd;
    if (r.kind == "input" || r.kind == "vector") {
      lr_sgd = fan_exps(f, 0, 1);
    } else if (r.kind == "hidden") {
      init = fan_exps(f, -0.5, 0);
      lr_adam = fan_exps(f, -1, 0);
      lr_sgd = fan_exps(f, -1, 1);
    } else {  // output
      init = fan_exps(f, -1, 0);
      lr_adam = fan_exps(f, -1, 0);
      lr_sgd = fan_exps(f, -1, 0);
    }

    if (sp) {
      // SP: sigma * a^-1/2 for every matrix, the base eta everywhere.
      init = (g == Group::Norm) ? Exps{} : fan_exps(f, -0.5, 0);
      lr_adam = lr_sgd = Exps{};
    } else if (mssp) {
      if (g == Group::Router) {
        init = Exps{}.add(Axis::N, -1);
        lr_adam = Exps{}.add(Axis::N, -1);
      } else if (g == Group::ExpertDown) {
        init = Exps{}.add(Axis::N, 0.5).add(Axis::Ne, -1);  // mean-field
      }
      if (is_expert_group(g)) lr_sgd.add(Axis::K, 1);  // undo the 1/K of the mean aggregation
    }
    if (!sp && is_block_matrix(g)) {  // depth: hidden LR * m_L^(alpha-1) (Adam), m_L^(2alpha-1) (SGD)
      lr_adam.add(Axis::L, L.depth_alpha - 1);
      lr_sgd.add(Axis::L, 2 * L.depth_alpha - 1);
    }
    r.init_e = init;
    r.lr_e = adam ? lr_adam : lr_sgd;
    if (pc.scale_eps && adam && r.kind == "hidden")
      r.eps_e = Exps{}.add(Axis::N, -1).add(Axis::L, -L.depth_alpha);

    // overrides replace whole entries (unset exponents are 0)
    auto ov = pc.overrides.find(std::string(group_name(g)));
    if (ov != pc.overrides.end()) {
      const config::GroupOverride& o = ov->second;
      if (o.init) { r.init_e = from_override(*o.init); r.overridden.push_back("init"); }
      if (o.multiplier) { r.mult_e = from_override(*o.multiplier); r.overridden.push_back("multiplier"); }
      if (o.lr) { r.lr_e = from_override(*o.lr); r.overridden.push_back("lr"); }
      if (o.eps) { r.eps_e = from_override(*o.eps); r.overridden.push_back("eps"); }
      if (o.weight_decay) { r.wd_e = from_override(*o.weight_decay); r.overridden.push_back("weight_decay"); }
      if (o.zero_init) {
        if (*o.zero_init) r.init_kind = "zeros";
        r.overridden.push_back("zero_init");
      }
    }

    r.init_std = r.init_kind == "normal" ? r.sigma * eval(sh, r.init_e) : 0.0;
    r.multiplier = eval(sh, r.mult_e);
    r.lr = r.eta * eval(sh, r.lr_e);
    r.eps = r.base_eps * eval(sh, r.eps_e);
    r.weight_decay = r.base_wd * eval(sh, r.wd_e);
  }
  L.output_mult = t.groups[static_cast<int>(Group::Unembed)].multiplier;
  return t;
}

}  // namespace moe::optim
