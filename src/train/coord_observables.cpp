// The coordinate-check observables: effective and propagating updates, gradient RMS.
#include "src/train/coord_observables.h"

#include "src/optim/groups.h"

namespace moe::train {
namespace {

const std::string kGradSuffix = "_grad";

double mean_square(const Tensor& t) {
  const double* v = t.data<double>();
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += v[i] * v[i];
  return t.numel() ? s / double(t.numel()) : 0.0;
}

// Expert e's matrix (out, in) of a stacked (M_local, out, in) tensor.
Tensor expert_slice(const Tensor& w, int64_t e) { return w.rows(e, e + 1).view({w.dim(1), w.dim(2)}); }

// "blocks.<l>.…" -> l; anything else (embeddings, final norm, unembedding) -> -1.
int layer_of(const std::string& name) {
  const std::string pre = "blocks.";
  if (name.compare(0, pre.size(), pre) != 0) return -1;
  return std::stoi(name.substr(pre.size()));
}

}  // namespace

const std::vector<LinearSite> kLinearSites = {
    {"attn_qkv", "attn_in"},   {"attn_out", "attn_heads"}, {"router", "moe_in"},
    {"expert_up", "moe_in"},   {"expert_gate", "moe_in"},  {"expert_down", ""},
    {"unembed", "unembed_in"}, {"mlp_up", "mlp_in"},       {"mlp_down", "mlp_hidden"},
};

LinearMs linear_ms(ops::Backend& cpu, const Tensor& w0, const Tensor& wt, const Tensor& x0,
                   const Tensor& xt, double mult) {
  MOE_CHECK(w0.shape() == wt.shape() && x0.shape() == xt.shape() && xt.dim(1) == w0.dim(1),
            "linear_ms: shapes do not match");
  const int64_t n = xt.dim(0), out = w0.dim(0);
  Tensor dw = wt.clone();  // (out, in) W_t - W_0
  cpu.axpy(w0, dw, -1.0);
  Tensor a = Tensor::empty({n, out}, DType::F64), b = Tensor::empty({n, out}, DType::F64);
  Tensor y0 = Tensor::empty({n, out}, DType::F64);
  cpu.gemm(xt, false, w0, true, a, mult, 0.0);   // m x_t W_0^T
  cpu.gemm(xt, false, dw, true, b, mult, 0.0);   // m x_t (W_t - W_0)^T: the effective update
  cpu.gemm(x0, false, w0, true, y0, mult, 0.0);  // m x_0 W_0^T
  // y_t = a + b, and y_t - y_0 = b + (a - y_0): effective plus propagating update. At step 0
  // (W_t = W_0, x_t = x_0 bit for bit) b and a - y_0 are exactly zero.
  LinearMs r;
  const double *pa = a.data<double>(), *pb = b.data<double>(), *p0 = y0.data<double>();
  for (int64_t i = 0; i < n * out; ++i) {
    r.y += (pa[i] + pb[i]) * (pa[i] + pb[i]);
    r.dy += (pa[i] + pb[i] - p0[i]) * (pa[i] + pb[i] - p0[i]);
    r.eff += pb[i] * pb[i];
    r.prop += (pa[i] - p0[i]) * (pa[i] - p0[i]);
  }
  const double c = n * out > 0 ? 1.0 / double(n * out) : 0.0;
  r.y *= c, r.dy *= c, r.eff *= c, r.prop *= c;
  return r;
}

CoordObserver::CoordObserver(models::Transformer& model, bool linear_updates)
    : model_(model), cpu_(ops::make_cpu_backend()), linear_updates_(linear_updates) {}
CoordObserver::~CoordObserver() = default;

void CoordObserver::record(const std::string& site, int layer, const Tensor& t) {
  Tensor host = t.to(Device::CPU);
  Tensor v = Tensor::empty(host.shape(), DType::F64);
  cpu_->cast(host, v);
  const size_t g = kGradSuffix.size();
  if (site.size() > g && site.compare(site.size() - g, g, kGradSuffix) == 0) {
    grads_[{site.substr(0, site.size() - g), layer}] = std::sqrt(mean_square(v));
    return;
  }
  now_[{site, layer}] = v.view({v.dim(0), v.numel() / std::max<int64_t>(v.dim(0), 1)});
}

// The expert's hidden activation phi(m_up x U_e^T) (n, F) on every token of x, with the
// weights at init or now (SwiGLU: silu(m_gate x G_e^T) * m_up x U_e^T, as models/moe/experts).
Tensor CoordObserver::expert_hidden(const std::string& prefix, int64_t e, const Tensor& x, bool at_init) {
  const auto& w = at_init ? w0_ : wt_;
  const optim::ParamTable& t = model_.table();
  const Tensor up = expert_slice(w.at(prefix + "expert_up"), e);
  const int64_t n = x.dim(0), F = up.dim(0);
  Tensor h = Tensor::empty({n, F}, DType::F64), a = Tensor::empty({n, F}, DType::F64);
  cpu_->gemm(x, false, up, true, h, t[optim::Group::ExpertUp].multiplier, 0.0);
  auto gate = w.find(prefix + "expert_gate");
  if (gate != w.end()) {
    Tensor g = Tensor::empty({n, F}, DType::F64);
    cpu_->gemm(x, false, expert_slice(gate->second, e), true, g, t[optim::Group::ExpertGate].multiplier, 0.0);
    cpu_->swiglu_forward(g, h, a);
  } else {
    cpu_->gelu_forward(h, a, models::gelu_form(model_.config().moe));
  }
  return a;
}

void CoordObserver::observe_linear(const optim::Param& p, const LinearSite& s, int layer, Observables& o) {
  const double mult = model_.table()[p.group].multiplier;
  const Tensor &W0 = w0_.at(p.name), &Wt = wt_.at(p.name);
  const int64_t units = p.expert ? p.shape[0] : 1;
  const std::string prefix = p.name.substr(0, p.name.rfind('.') + 1);  // "blocks.l.moe."
  LinearMs sum;
  for (int64_t e = 0; e < units; ++e) {
    Tensor x0, xt;
    if (*s.input == '\0') {  // expert_down: the hidden activation of this expert on every token
      const SiteKey in{"moe_in", layer};
      MOE_CHECK(now_.count(in), "coord check: site moe_in of layer ", layer, " was not recorded");
      x0 = expert_hidden(prefix, e, init_.at(in), true);
      xt = expert_hidden(prefix, e, now_.at(in), false);
    } else {
      const SiteKey in{s.input, layer};
      MOE_CHECK(now_.count(in), "coord check: ", p.name, " needs its input recorded as probe site ",
                s.input, " (layer ", layer, ")");
      x0 = init_.at(in);
      xt = now_.at(in);
    }
    const Tensor w0 = p.expert ? expert_slice(W0, e) : W0, wt = p.expert ? expert_slice(Wt, e) : Wt;
    LinearMs r = linear_ms(*cpu_, w0, wt, x0, xt, mult);
    sum.y += r.y / double(units), sum.dy += r.dy / double(units);
    sum.eff += r.eff / double(units), sum.prop += r.prop / double(units);
  }
  o.rms = std::sqrt(sum.y), o.delta = std::sqrt(sum.dy);
  o.eff = std::sqrt(sum.eff), o.prop = std::sqrt(sum.prop);
}

ObsMap CoordObserver::observe() {
  auto f64 = [this](const Tensor& t) {
    Tensor host = t.to(Device::CPU), v = Tensor::empty(host.shape(), DType::F64);
    cpu_->cast(host, v);
    return v;
  };
  wt_.clear();
  for (const optim::Param& p : model_.params().params()) wt_[p.name] = f64(p.value);
  if (!have_init_) {
    init_ = now_;
    w0_ = wt_;
    have_init_ = true;
  }
  ObsMap out;
  for (const auto& [key, xt] : now_) {
    const Tensor& x0 = init_.at(key);
    Tensor d = xt.clone();
    cpu_->axpy(x0, d, -1.0);
    out[key].rms = std::sqrt(mean_square(xt));
    out[key].delta = std::sqrt(mean_square(d));
  }
  for (const auto& [key, g] : grads_) out[key].grad = g;
  // Gradient RMS over every element of a group's tensors in one layer (attn_norm and moe_norm
  // of a block together), then the linear maps.
  std::map<SiteKey, std::pair<double, int64_t>> gsum;
  for (const optim::Param& p : model_.params().params()) {
    const SiteKey key{"W." + std::string(optim::group_name(p.group)), layer_of(p.name)};
    Tensor g = f64(p.grad);
    gsum[key].first += mean_square(g) * double(g.numel());
    gsum[key].second += g.numel();
    for (const LinearSite& s : kLinearSites)
      if (linear_updates_ && optim::group_name(p.group) == s.group) observe_linear(p, s, key.second, out[key]);
  }
  for (const auto& [key, s] : gsum) out[key].grad = std::sqrt(s.first / double(std::max<int64_t>(s.second, 1)));
  return out;
}

}  // namespace moe::train
