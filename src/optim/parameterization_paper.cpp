// The MSSP paper's rules (arXiv 2605.14200), read from its official code:
// transformer-moe-experiments/scaling.py (Adam: MupFixedE = regime I, MupBottleneck /
// MupBottleneckNoExpertDownInit = regime II MSSP / muP, MupAllScale = regime III) and
// model.py (tied_expert_init, per-group eps, decay lambda / lr_scale); SGD from
// mlp-moe-experiments/scaling_configs.py. muP and MSSP differ only at initialisation:
//   regime I    MSSP's router starts at zero (muP: std 1/N),
//   regime II   MSSP's expert-down std is sqrt(M / N_e) (muP: 1/sqrt(N_e)),
//   regime III  MSSP's experts of a layer start as copies of expert 0 (muP: independent).
// Learning rates are relative to the base (the code's BASE_WIDTH / n_embd); Adam eps is
// absolute in N and M as in the code (eps * N^a * M^b), written here as its base value times
// multipliers so that the table prints the formula.
#include <cmath>

#include "src/optim/rules.h"

namespace moe::optim {
namespace {

// std = 1/sqrt(fan_in): the code's hidden-matrix init, absolute in the fan.
void fan_in_init(Rule& r, Group g, const ModelShape& sh) {
  Fans f = group_fans(g);
  r.sigma = 1.0 / std::sqrt(double(fan_dim(sh, f.in, true)));
  r.init_e = fan_exps(f, -0.5, 0);
}

// eps * N^a * M^b, with N and M those of the model.
void abs_eps(Rule& r, const ModelShape& sh, double a, double b) {
  r.eps_base = std::pow(double(sh.base.N), a) * std::pow(double(sh.base.M), b);
  r.eps_e = Exps{}.add(Axis::N, a).add(Axis::M, b);
}

}  // namespace

Rule paper_rule(Group g, Regime regime, bool mssp, bool adam, const ModelShape& sh,
                const config::Config& c) {
  Rule r;
  r.lr_corrected_decay = true;
  const Exps one;
  const Exps inv_n = Exps{}.add(Axis::N, -1);
  switch (g) {
    case Group::Embed:
    case Group::PosEmbed:  // learned positions (the paper uses RoPE): like the embedding
      r.kind = "input";
      r.sigma = c.parameterization.init_std;
      r.lr_e = adam ? one : Exps{}.add(Axis::N, 1);
      abs_eps(r, sh, -1, 0);
      return r;
    case Group::Norm:
      r.kind = "vector";
      r.init_kind = "ones";
      r.lr_e = adam ? one : Exps{}.add(Axis::N, 1);
      abs_eps(r, sh, -1, 0);
      return r;
    case Group::AttnQKV:
    case Group::AttnOut:
    case Group::MlpUp:  // the dense MLP: the code's hidden matrices, like attention's
    case Group::MlpDown:
      r.kind = "hidden";
      fan_in_init(r, g, sh);
      r.lr_e = adam ? inv_n : one;
      abs_eps(r, sh, -1, 0);
      return r;
    case Group::Unembed:
      r.kind = "output";
      r.init_kind = "zero";
      r.lr_e = inv_n;
      abs_eps(r, sh, 0, 0);
      return r;
    case Group::Router:
      if (regime == Regime::I) {  // output-like: M fixed
        r.kind = "output";
        if (mssp) {
          r.init_kind = "zero";
        } else {
          r.sigma = 1.0 / double(sh.base.N);
          r.init_e = inv_n;
        }
        r.lr_e = inv_n;
        abs_eps(r, sh, 0, 0);
      } else {
        r.kind = "hidden";
        fan_in_init(r, g, sh);
        if (adam) r.lr_e = inv_n;
        else r.lr_e = regime == Regime::II ? Exps{}.add(Axis::M, 1).add(Axis::N, -1) : one;
        abs_eps(r, sh, 0, -1);
      }
      return r;
    case Group::ExpertUp:
    case Group::ExpertGate:
    case Group::ExpertDown: {
      r.kind = "hidden";
      const bool down = g == Group::ExpertDown;
      fan_in_init(r, g, sh);
      if (regime == Regime::I) {
        r.lr_e = adam ? inv_n : one;
        abs_eps(r, sh, -1, 0);
      } else if (regime == Regime::II) {
        if (down && mssp) {  // sqrt(M / fan_in)
          r.sigma *= std::sqrt(double(sh.base.M));
          r.init_e.add(Axis::M, 0.5);
        }
        if (adam) r.lr_e = down ? one : inv_n;
        else r.lr_e = Exps{}.add(Axis::M, 1).add(Axis::N, down ? 1 : -1);
        abs_eps(r, sh, down ? -1 : 0, -1);
      } else {
        if (mssp) r.init_kind = "tied";
        r.lr_e = adam ? inv_n : Exps{}.add(Axis::M, 1);
        abs_eps(r, sh, -1, -1);
      }
      return r;
    }
  }
  return r;
}

}  // namespace moe::optim
