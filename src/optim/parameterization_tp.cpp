// The sp and jiang presets: the muP core (Tensor Programs V, Table 3) in fan multipliers
// a (fan_in) and b (fan_out), as this project had it before the MSSP paper's presets.
//   sp     every matrix sigma * a^-1/2, the base learning rate everywhere (the control);
//   jiang  Jiang, Bordelon, Pehlevan, Hanin (arXiv 2601.20205): muP with the router initialised
//          and trained like an output layer in N (std and Adam LR m_N^-1), expert-down std
//          sigma * m_N^1/2 m_E^-1 (mean field), SGD expert LR * m_K (undoing the 1/K mean),
//          depth residual m_L^-1 with the hidden LR corrections.
// Weight decay follows each group's learning rate; norm gains are not decayed.
#include "src/optim/rules.h"

namespace moe::optim {
namespace {

bool is_block_matrix(Group g) {
  return is_dense_matrix(g) || g == Group::Router || is_expert_group(g);
}

}  // namespace

Rule tp_rule(Group g, const std::string& preset, bool adam, double depth_alpha, const ModelShape& sh,
             const config::Config& c) {
  Rule r;
  const Fans f = group_fans(g);
  const bool sp = preset == "sp";
  if (g == Group::Embed || g == Group::PosEmbed) r.kind = "input";
  else if (g == Group::Norm) r.kind = "vector";
  else if (g == Group::Unembed) r.kind = "output";
  else if (g == Group::Router) r.kind = sh.mult(Axis::M) != 1.0 ? "hidden" : "output";
  else r.kind = "hidden";
  r.sigma = c.parameterization.init_std;
  if (g == Group::Norm) r.init_kind = "ones";

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
    init = g == Group::Norm ? Exps{} : fan_exps(f, -0.5, 0);
    lr_adam = lr_sgd = Exps{};
  } else {
    if (g == Group::Router) {
      init = Exps{}.add(Axis::N, -1);
      lr_adam = Exps{}.add(Axis::N, -1);
    } else if (g == Group::ExpertDown) {
      init = Exps{}.add(Axis::N, 0.5).add(Axis::Ne, -1);  // mean field
    }
    if (is_expert_group(g)) lr_sgd.add(Axis::K, 1);  // undo the 1/K of the mean aggregation
    if (is_block_matrix(g)) {  // depth: hidden LR * m_L^(alpha-1) (Adam), m_L^(2alpha-1) (SGD)
      lr_adam.add(Axis::L, depth_alpha - 1);
      lr_sgd.add(Axis::L, 2 * depth_alpha - 1);
    }
  }
  r.init_e = init;
  r.lr_e = adam ? lr_adam : lr_sgd;
  if (c.parameterization.scale_eps && adam && r.kind == "hidden")
    r.eps_e = Exps{}.add(Axis::N, -1).add(Axis::L, -depth_alpha);
  return r;
}

}  // namespace moe::optim
