// Coordinate-check runs and their log-log slopes.
#include "src/train/coord_check.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "comm/parallel_context.h"
#include "models/host_batch.h"
#include "models/transformer.h"
#include "src/data/source.h"
#include "src/optim/optimizer.h"

namespace moe::train {
namespace {

// Output-like maps whose activation shrinks with the fan at init (init sigma / fan_in).
const std::set<std::string> kShrinkAtInit = {"logits", "router_logits", "W.router", "W.unembed"};

// Sum over seeds of each observable (NaN stays NaN: the same sites apply at every seed).
void accumulate(Observables& sum, const Observables& v, double w) {
  auto add = [w](double& s, double x) { s = std::isnan(s) ? x * w : s + x * w; };
  add(sum.rms, v.rms), add(sum.delta, v.delta), add(sum.eff, v.eff), add(sum.prop, v.prop);
  add(sum.grad, v.grad);
}

// The five observables as an array, for loops over them.
std::array<double*, 5> fields(Observables& v) { return {&v.rms, &v.delta, &v.eff, &v.prop, &v.grad}; }

std::string num(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

config::Config scale_config(const config::Config& base, const std::string& axis, double s) {
  config::Config c = base;
  auto mul = [s](int64_t v) { return std::max<int64_t>(1, int64_t(std::llround(double(v) * s))); };
  const bool width = axis == "N" || axis == "I" || axis == "II" || axis == "III";
  if (width) {  // head size fixed: heads grow with the width
    c.model.width = mul(base.model.width);
    c.model.heads = mul(base.model.heads);
  }
  if (axis == "I" || axis == "III") c.moe.expert_width = mul(base.moe.expert_width);
  if (axis == "II" || axis == "III") {
    c.moe.experts = mul(base.moe.experts);
    c.moe.top_k = mul(base.moe.top_k);
  }
  if (width) {
  } else if (axis == "Ne") {
    c.moe.expert_width = mul(base.moe.expert_width);
  } else if (axis == "M") {
    c.moe.experts = mul(base.moe.experts);
    c.moe.top_k = mul(base.moe.top_k);
  } else if (axis == "K") {
    c.moe.top_k = mul(base.moe.top_k);
  } else if (axis == "L") {
    c.model.depth = mul(base.model.depth);
  } else {
    throw InputError("--axis " + axis + ": expected N, Ne, M, K, L, I, II or III", true);
  }
  c.parallel.ep = 1;
  // The regime is the axis's: I, II, III as named; a single axis N, N_e, M or K takes the
  // regime its growth implies (N, N_e: I; M, K: II), so that the base scale, where nothing
  // differs, resolves like the others. Depth (L) keeps the config's regime.
  if (axis == "I" || axis == "II" || axis == "III") {
    c.parameterization.regime = axis;
  } else if (axis != "L") {
    config::Config grown = base;
    grown.model.width *= axis == "N" ? 2 : 1;
    grown.moe.expert_width *= axis == "Ne" ? 2 : 1;
    grown.moe.experts *= axis == "M" ? 2 : 1;
    grown.moe.top_k *= axis == "M" || axis == "K" ? 2 : 1;
    grown.parameterization.regime = "auto";
    if (auto r = optim::config_regime(grown)) c.parameterization.regime = optim::regime_name(*r);
  }
  config::validate(c, "coord-check at scale " + std::to_string(s), 1);
  return c;
}

double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = double(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(y[i] > 0)) return NAN;  // NaN or zero: no power law to fit
    double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  double den = n * sxx - sx * sx;
  return den != 0 ? (n * sxy - sx * sy) / den : 0.0;
}

CoordResult coord_check(const CoordSpec& spec, comm::Communicator& self, ops::Backend& backend) {
  CoordResult res;
  for (const std::string& preset : spec.presets) {
    // sums over seeds: [scale][step][(site, layer)]
    std::map<double, std::map<int, ObsMap>> sums;
    for (double scale : spec.scales) {
      config::Config c = scale_config(spec.base, spec.axis, scale);
      c.parameterization.preset = preset;
      c.optim.name = spec.optimizer;
      c.optim.schedule = "constant";
      c.optim.warmup = 0;
      c.optim.grad_clip = 0;
      c.optim.weight_decay = 0;
      optim::ParamTable table = optim::make_param_table(c);
      auto src = data::make_source(c.data, c.model.vocab, c.model.seq_len);
      data::LocalBatch lb;
      data::load_batch(*src, 0, c.train.batch, c.model.seq_len, 0, 1, lb);
      for (int seed = 0; seed < spec.seeds; ++seed) {
        auto ctx = comm::make_parallel_context(self.split(0, 0), 1, &backend);
        models::Transformer model(c, table, ctx, DType::F32);
        model.init_params(uint64_t(c.run.seed) + 1000 * uint64_t(seed));
        optim::Optimizer opt(c.optim, spec.steps, table, model.params(), ctx, false);
        models::Batch b = models::host_batch(lb);
        b.inputs = b.inputs.to(backend.device());
        b.targets = b.targets.to(backend.device());
        CoordObserver observer(model, spec.linear_updates);
        model.set_probe(&observer);
        for (int step = 0; step <= spec.steps; ++step) {
          model.params().zero_grads();
          model.run(b, true);  // the backward also at the last step: its gradients are observed
          for (auto& [key, v] : observer.observe()) accumulate(sums[scale][step][key], v, 1.0 / spec.seeds);
          if (step < spec.steps) {
            optim::StepInfo info = opt.reduce_gradients();
            opt.apply(step + 1, info);
            model.update_expert_bias();
          }
        }
        model.set_probe(nullptr);
      }
    }
    // Per layer, and the mean over the blocks that have the site.
    std::map<double, std::map<int, std::map<std::string, Observables>>> mean;  // [scale][step][site]
    for (auto& [scale, steps] : sums)
      for (auto& [step, obs] : steps) {
        // A site in the blocks is the mean over them (W.norm leaves out the final norm, which
        // keeps its own row at layer -1); a site outside the blocks is its one value.
        std::map<std::string, std::pair<Observables, int>> over_layers;
        for (auto& [key, v] : obs) {
          res.records.push_back({preset, scale, step, key.first, key.second, v});
          if (key.second >= 0) accumulate(over_layers[key.first].first, v, 1.0), ++over_layers[key.first].second;
        }
        for (auto& [key, v] : obs)
          if (key.second < 0 && !over_layers.count(key.first)) mean[scale][step][key.first] = v;
        for (auto& [site, mc] : over_layers) {
          Observables m = mc.first;
          for (double* f : fields(m)) *f /= mc.second;
          res.records.push_back({preset, scale, step, site, kMeanLayer, m});
          mean[scale][step][site] = m;
        }
      }
    for (auto& [site, unused] : mean[spec.scales[0]][spec.steps]) {
      CoordSlope sl{preset, site, {}, kShrinkAtInit.count(site) > 0};
      std::array<double*, 5> out = fields(sl.slope);
      for (size_t f = 0; f < out.size(); ++f) {
        std::vector<double> x, y;
        for (double scale : spec.scales) {
          x.push_back(scale);
          y.push_back(*fields(mean[scale][spec.steps][site])[f]);
        }
        *out[f] = loglog_slope(x, y);
      }
      res.slopes.push_back(sl);
    }
  }
  return res;
}

std::string coord_csv(const CoordResult& r) {
  std::ostringstream os;
  os << "preset,scale,step,site,layer,rms,delta_rms,eff_update,prop_update,grad_rms\n";
  for (const CoordRecord& c : r.records) {
    os << c.preset << "," << c.scale << "," << c.step << "," << c.site << ","
       << (c.layer == kMeanLayer ? std::string("mean") : std::to_string(c.layer));
    Observables v = c.v;
    for (double* f : fields(v)) os << "," << num(*f);
    os << "\n";
  }
  return os.str();
}

std::string coord_slopes_csv(const CoordResult& r) {
  std::ostringstream os;
  os << "preset,site,rms,delta_rms,eff_update,prop_update,grad_rms\n";
  for (const CoordSlope& s : r.slopes) {
    os << s.preset << "," << s.site;
    Observables v = s.slope;
    for (double* f : fields(v)) os << "," << num(*f);
    os << "\n";
  }
  return os.str();
}

std::string coord_summary(const CoordResult& r, double tol) {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-6s %-18s %8s %8s %8s %8s %8s  %s\n", "preset", "site", "rms", "change",
                "eff", "prop", "grad", "(slopes; - : none or zero)");
  os << buf;
  auto cell = [](double v) {
    char b[16];
    if (std::isnan(v)) return std::string("-");
    std::snprintf(b, sizeof b, "%.3f", v);
    return std::string(b);
  };
  for (const CoordSlope& s : r.slopes) {
    const Observables& v = s.slope;
    bool stable = true, judged = false;  // a group seen only through its gradient is not judged
    for (double u : {v.delta, v.eff, v.prop, s.rms_exempt ? NAN : v.rms}) {
      judged = judged || !std::isnan(u);
      if (!std::isnan(u) && std::abs(u) >= tol) stable = false;
    }
    std::snprintf(buf, sizeof buf, "%-6s %-18s %8s %8s %8s %8s %8s  %s%s\n", s.preset.c_str(), s.site.c_str(),
                  cell(v.rms).c_str(), cell(v.delta).c_str(), cell(v.eff).c_str(), cell(v.prop).c_str(),
                  cell(v.grad).c_str(), !judged ? "" : stable ? "stable" : "SCALES",
                  s.rms_exempt ? " (rms may shrink)" : "");
    os << buf;
  }
  return os.str();
}

}  // namespace moe::train
