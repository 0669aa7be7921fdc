// The per-group rules of each preset before base values, multipliers and overrides are applied
// (internal to src/optim/parameterization*.cpp). A rule is a base value at the base shape and
// exponents of the scale multipliers m = (m_N, m_E, m_M, m_K, m_L), so that param-table can
// print every entry as a formula.
#pragma once
#include "src/config/config.h"
#include "src/optim/parameterization.h"

namespace moe::optim {

struct Rule {
  std::string kind;                  // input | hidden | output | vector (muP's classes)
  std::string init_kind = "normal";  // normal | zero | ones | tied
  double sigma = 0;                  // init std at the base shape (normal, tied)
  Exps init_e, lr_e;
  double eps_base = 1;               // Adam eps factor at the base shape (times optim.eps)
  Exps eps_e;
  // false (sp, jiang): decay lambda on every group, so lr * decay follows the group's LR;
  // true (mup, mssp): decay lambda * eta / eta_group, so lr * decay = eta * lambda everywhere.
  bool lr_corrected_decay = false;
};

// Fan axes of one expert's matrix ("" for a fixed size: V or T).
struct Fans {
  const char* in;
  const char* out;
};
Fans group_fans(Group g);
// a^x b^y as axis exponents, where a and b are the fan_in and fan_out multipliers.
Exps fan_exps(const Fans& f, double x, double y);
int64_t fan_dim(const ModelShape& s, const char* axis, bool base);

// The MSSP paper's muP baseline (mssp = false) and MSSP (mssp = true), for Adam or SGD, in a
// regime: parameterization_paper.cpp, from the paper's official code.
Rule paper_rule(Group g, Regime regime, bool mssp, bool adam, const ModelShape& sh,
                const config::Config& c);
// sp and jiang (parameterization_tp.cpp): the muP core of Tensor Programs V in fan multipliers,
// with jiang's MoE changes.
Rule tp_rule(Group g, const std::string& preset, bool adam, double depth_alpha, const ModelShape& sh,
             const config::Config& c);

}  // namespace moe::optim
