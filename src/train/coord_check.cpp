// Coordinate-check runs and their log-log slopes.
#include "src/train/coord_check.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "comm/parallel_context.h"
#include "models/transformer.h"
#include "src/data/source.h"
#include "src/optim/optimizer.h"

namespace moe::train {
namespace {

// Collects, for one forward pass, each site's RMS and the RMS of its change since step 0.
class RmsProbe final : public models::Probe {
 public:
  int step = 0;
  void record(const std::string& site, int layer, const Tensor& t) override {
    Tensor h = t.to(Device::CPU);
    const int64_t n = h.numel();
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = h.dtype() == DType::F64 ? h.data<double>()[i] : h.data<float>()[i];
    const std::string key = site + "/" + std::to_string(layer);
    if (step == 0) init_[key] = v;
    const std::vector<double>& v0 = init_[key];
    double ss = 0, dd = 0;
    for (int64_t i = 0; i < n; ++i) {
      ss += v[i] * v[i];
      dd += (v[i] - v0[i]) * (v[i] - v0[i]);
    }
    Acc& a = acc_[site];
    a.rms += std::sqrt(ss / std::max<int64_t>(n, 1));
    a.delta += std::sqrt(dd / std::max<int64_t>(n, 1));
    ++a.count;
  }
  // Per site: mean over layers of (rms, delta) for the pass just recorded.
  std::map<std::string, std::pair<double, double>> take() {
    std::map<std::string, std::pair<double, double>> out;
    for (auto& [site, a] : acc_) out[site] = {a.rms / a.count, a.delta / a.count};
    acc_.clear();
    return out;
  }

 private:
  struct Acc {
    double rms = 0, delta = 0;
    int count = 0;
  };
  std::map<std::string, std::vector<double>> init_;
  std::map<std::string, Acc> acc_;
};

const std::set<std::string> kShrinkAtInit = {"logits", "router_logits"};

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
    double lx = std::log(x[i]), ly = std::log(std::max(y[i], 1e-300));
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
    // sums over seeds: [scale][step][site] -> (rms, delta)
    std::map<double, std::map<int, std::map<std::string, std::pair<double, double>>>> sums;
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
        models::Batch b;
        b.inputs = Tensor::empty({int64_t(lb.inputs.size())}, DType::I32);
        b.targets = Tensor::empty({int64_t(lb.targets.size())}, DType::I32);
        std::copy(lb.inputs.begin(), lb.inputs.end(), b.inputs.data<int32_t>());
        std::copy(lb.targets.begin(), lb.targets.end(), b.targets.data<int32_t>());
        b.inputs = b.inputs.to(backend.device());
        b.targets = b.targets.to(backend.device());
        RmsProbe probe;
        model.set_probe(&probe);
        for (int step = 0; step <= spec.steps; ++step) {
          probe.step = step;
          model.params().zero_grads();
          model.run(b, step < spec.steps);
          for (auto& [site, v] : probe.take()) {
            auto& s = sums[scale][step][site];
            s.first += v.first / spec.seeds;
            s.second += v.second / spec.seeds;
          }
          if (step < spec.steps) {
            optim::StepInfo info = opt.reduce_gradients();
            opt.apply(step + 1, info);
            model.update_expert_bias();
          }
        }
      }
    }
    for (auto& [scale, steps] : sums)
      for (auto& [step, sites] : steps)
        for (auto& [site, v] : sites) res.records.push_back({preset, scale, step, site, v.first, v.second});
    for (auto& [site, unused] : sums[spec.scales[0]][spec.steps]) {
      std::vector<double> x, yr, yd;
      for (double scale : spec.scales) {
        x.push_back(scale);
        yr.push_back(sums[scale][spec.steps][site].first);
        yd.push_back(sums[scale][spec.steps][site].second);
      }
      res.slopes.push_back({preset, site, loglog_slope(x, yr), loglog_slope(x, yd), kShrinkAtInit.count(site) > 0});
    }
  }
  return res;
}

std::string coord_csv(const CoordResult& r) {
  std::ostringstream os;
  os << "preset,scale,step,site,rms,delta_rms\n";
  for (const CoordRecord& c : r.records)
    os << c.preset << "," << c.scale << "," << c.step << "," << c.site << "," << c.rms << "," << c.delta << "\n";
  return os.str();
}

std::string coord_summary(const CoordResult& r, double tol) {
  std::ostringstream os;
  char buf[200];
  std::snprintf(buf, sizeof buf, "%-6s %-14s %12s %12s  %s\n", "preset", "site", "slope(rms)", "slope(delta)", "");
  os << buf;
  for (const CoordSlope& s : r.slopes) {
    bool stable = std::abs(s.delta_slope) < tol && (s.rms_exempt || std::abs(s.rms_slope) < tol);
    std::snprintf(buf, sizeof buf, "%-6s %-14s %12.3f %12.3f  %s%s\n", s.preset.c_str(), s.site.c_str(), s.rms_slope,
                  s.delta_slope, stable ? "stable" : "SCALES", s.rms_exempt ? " (rms may shrink at init)" : "");
    os << buf;
  }
  return os.str();
}

}  // namespace moe::train
