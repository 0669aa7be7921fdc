// Printing the parameterization table: text (with the scaling formulas), CSV, JSON, and the
// difference between two tables.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "src/core/error.h"
#include "src/metrics/json.h"
#include "src/optim/parameterization.h"

namespace moe::optim {
namespace {

// Six digits for people (text and diff); every digit for CSV and JSON, which programs read back.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string exact(double v) { return metrics::round_trip(v); }

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

const char* gate_name(ops::Gate g) { return g == ops::Gate::Sigmoid ? "sigmoid" : "softmax"; }

std::string shape_line(const ParamTable& t) {
  const ModelShape& s = t.shape;
  std::ostringstream os;
  os << "shape N=" << s.s.N << " Ne=" << s.s.Ne << " M=" << s.s.M << " K=" << s.s.K << " L=" << s.s.L
     << " (base N=" << s.base.N << " Ne=" << s.base.Ne << " M=" << s.base.M << " K=" << s.base.K
     << " L=" << s.base.L << "); multipliers m_N=" << num(s.mult(Axis::N)) << " m_Ne=" << num(s.mult(Axis::Ne))
     << " m_M=" << num(s.mult(Axis::M)) << " m_K=" << num(s.mult(Axis::K)) << " m_L=" << num(s.mult(Axis::L))
     << "; dense MLP F=" << s.F << " = " << num(s.mlp_ratio) << " N (grows with N: fan F scales as m_N)";
  return os.str();
}

std::vector<std::pair<std::string, std::string>> layer_rows(const ParamTable& t,
                                                            std::string (*fmt)(double) = num) {
  const LayerRules& L = t.layer;
  return {{"depth_alpha", fmt(L.depth_alpha)},
          {"residual_mult", fmt(L.residual_mult)},
          {"c_agg", fmt(L.c_agg)},
          {"gate_alpha", fmt(L.gate_alpha)},
          {"base_top_k", std::to_string(L.base_top_k)},
          {"gate", gate_name(L.gate)},
          {"renormalize", L.renormalize ? "true" : "false"},
          {"expert_bias", L.expert_bias ? "true" : "false"},
          {"aux_probs", L.aux_selected ? "selected" : "all"},
          {"attn_scale", fmt(L.attn_scale)},
          {"output_mult", fmt(L.output_mult)}};
}

}  // namespace

std::string format_table(const ParamTable& t, const std::string& format) {
  std::ostringstream os;
  const char* opt = t.optimizer == OptimizerKind::Adam ? "adam" : "sgd";
  if (format == "csv") {
    os << "group,kind,fan_in,fan_out,init_std,multiplier,lr,eps,weight_decay,init,effective_decay,"
          "init_rule,multiplier_rule,lr_rule,eps_rule,init_mult,lr_mult,overridden,in_model\n";
    for (const GroupRule& r : t.groups)
      os << group_name(r.group) << "," << r.kind << "," << r.fan_in << "," << r.fan_out << ","
         << exact(r.init_std) << "," << exact(r.multiplier) << "," << exact(r.lr) << "," << exact(r.eps) << ","
         << exact(r.weight_decay) << "," << r.init_kind << "," << exact(r.effective_decay) << ","
         << r.init_e.str() << "," << r.mult_e.str() << "," << r.lr_e.str() << "," << r.eps_e.str() << ","
         << exact(r.init_mult) << "," << exact(r.lr_mult) << "," << join(r.overridden, ";") << ","
         << (r.in_model ? "true" : "false") << "\n";
    return os.str();
  }
  if (format == "json") {
    metrics::Json j;
    j.begin_object().kv("preset", t.preset).kv("regime", t.regime).kv("optimizer", opt);
    const ModelShape& s = t.shape;
    j.key("shape").begin_object().kv("N", s.s.N).kv("Ne", s.s.Ne).kv("M", s.s.M).kv("K", s.s.K).kv("L", s.s.L).end_object();
    j.key("base").begin_object().kv("N", s.base.N).kv("Ne", s.base.Ne).kv("M", s.base.M).kv("K", s.base.K).kv("L", s.base.L).end_object();
    j.key("groups").begin_array();
    for (const GroupRule& r : t.groups) {
      j.begin_object().kv("group", std::string(group_name(r.group))).kv("kind", r.kind);
      j.kv("fan_in", r.fan_in).kv("fan_out", r.fan_out).kv("init_std", r.init_std);
      j.kv("multiplier", r.multiplier).kv("lr", r.lr).kv("eps", r.eps).kv("weight_decay", r.weight_decay);
      j.kv("init", r.init_kind).kv("effective_decay", r.effective_decay);
      j.kv("init_rule", r.init_e.str()).kv("lr_rule", r.lr_e.str()).kv("eps_rule", r.eps_e.str());
      j.kv("init_mult", r.init_mult).kv("lr_mult", r.lr_mult).kv("in_model", r.in_model);
      j.key("overridden").begin_array();
      for (const auto& o : r.overridden) j.value(o);
      j.end_array().end_object();
    }
    j.end_array();
    j.key("layer").begin_object();
    for (const auto& [k, v] : layer_rows(t, exact)) j.kv(k, v);
    j.key("overridden").begin_array();
    for (const auto& o : t.layer.overridden) j.value(o);
    j.end_array().end_object().end_object();
    return j.str() + "\n";
  }
  MOE_CHECK(format == "text", "unknown format ", format, " (text, csv, json)");
  os << "preset " << t.preset << ", regime " << t.regime << ", optimizer " << opt << "\n" << shape_line(t) << "\n\n";
  os << pad("group", 12) << pad("kind", 8) << pad("fan_in", 8) << pad("fan_out", 8) << pad("init", 7)
     << pad("init_std", 12) << pad("init rule", 26) << pad("mult", 8) << pad("lr", 12) << pad("lr rule", 22)
     << pad("eps", 13) << pad("eps rule", 26) << pad("wd", 12) << pad("eff. decay", 12) << "overridden\n";
  std::vector<std::string> absent;
  for (const GroupRule& r : t.groups) {
    if (!r.in_model) {
      absent.push_back(std::string(group_name(r.group)));
      continue;
    }
    const bool has_std = r.init_kind == "normal" || r.init_kind == "tied";
    std::string init_rule = has_std ? num(r.sigma) + " " + r.init_e.str() : "-";
    os << pad(std::string(group_name(r.group)), 12) << pad(r.kind, 8) << pad(std::to_string(r.fan_in), 8)
       << pad(std::to_string(r.fan_out), 8) << pad(r.init_kind, 7) << pad(has_std ? num(r.init_std) : "-", 12)
       << pad(init_rule, 26) << pad(num(r.multiplier), 8) << pad(num(r.lr), 12)
       << pad(num(r.eta) + " " + r.lr_e.str(), 22) << pad(num(r.eps), 13) << pad(num(r.base_eps) + " " + r.eps_e.str(), 26)
       << pad(num(r.weight_decay), 12) << pad(num(r.effective_decay), 12) << join(r.overridden, ",") << "\n";
  }
  if (!absent.empty()) os << "(not in this model: " << join(absent, ", ") << ")\n";
  os << "\nlayer:";
  for (const auto& [k, v] : layer_rows(t)) os << " " << k << "=" << v;
  if (!t.layer.overridden.empty()) os << "  (overridden: " << join(t.layer.overridden, ",") << ")";
  os << "\n";
  return os.str();
}

std::string format_diff(const ParamTable& a, const ParamTable& b) {
  std::ostringstream os;
  os << "A: " << shape_line(a) << " [" << a.preset << ", regime " << a.regime << "]\nB: " << shape_line(b) << " ["
     << b.preset << ", regime " << b.regime << "]\n\n";
  os << pad("group", 12) << pad("entry", 14) << pad("A", 14) << pad("B", 14) << "B/A\n";
  int changes = 0;
  // init_std, lr, eps and decays always (the ratio is what a researcher checks); the rest when
  // they differ.
  auto row = [&](const std::string& g, const std::string& e, double x, double y, bool always = false) {
    if (x != y) ++changes;
    if (x == y && !always) return;
    os << pad(g, 12) << pad(e, 14) << pad(num(x), 14) << pad(num(y), 14)
       << (x != 0 ? num(y / x) : std::string("-")) << "\n";
  };
  for (int i = 0; i < kNumGroups; ++i) {
    const GroupRule &x = a.groups[i], &y = b.groups[i];
    if (!x.in_model && !y.in_model) continue;
    std::string g(group_name(x.group));
    row(g, "fan_in", double(x.fan_in), double(y.fan_in));
    row(g, "fan_out", double(x.fan_out), double(y.fan_out));
    row(g, "init_std", x.init_std, y.init_std, true);
    row(g, "multiplier", x.multiplier, y.multiplier);
    row(g, "lr", x.lr, y.lr, true);
    row(g, "eps", x.eps, y.eps, true);
    row(g, "weight_decay", x.weight_decay, y.weight_decay, true);
    row(g, "eff_decay", x.effective_decay, y.effective_decay, true);
    if (x.init_kind != y.init_kind) {
      ++changes;
      os << pad(g, 12) << pad("init", 14) << pad(x.init_kind, 14) << pad(y.init_kind, 14) << "\n";
    }
    if (x.kind != y.kind) {
      ++changes;
      os << pad(g, 12) << pad("kind", 14) << pad(x.kind, 14) << pad(y.kind, 14) << "\n";
    }
  }
  auto la = layer_rows(a, exact), lb = layer_rows(b, exact);  // every digit: a change is a change
  for (size_t i = 0; i < la.size(); ++i)
    if (la[i].second != lb[i].second) {
      ++changes;
      os << pad("layer", 12) << pad(la[i].first, 14) << pad(la[i].second, 14) << pad(lb[i].second, 14) << "\n";
    }
  if (!changes) os << "(no differences)\n";
  return os.str();
}

}  // namespace moe::optim
