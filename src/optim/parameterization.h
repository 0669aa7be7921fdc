// The parameterization table (docs/parameterization.md): a pure function of (model shape, base
// shape, preset, regime, optimizer, multipliers, overrides) giving every group's init (normal
// with a std, zero, ones, or tied to expert 0), forward multiplier, learning rate, Adam eps and
// weight decay, and the layer constants (residual multiplier, gate and its scale, aux-loss
// probabilities, attention scale). It never sees ranks, EP sizes or devices: fans are those of
// one expert's matrix.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "src/config/config.h"
#include "src/ops/backend.h"
#include "src/optim/groups.h"
#include "src/optim/regime.h"

namespace moe::optim {

enum class Axis { N, Ne, M, K, L };
constexpr int kNumAxes = 5;
inline const char* axis_name(int a) {
  static const char* names[] = {"N", "Ne", "M", "K", "L"};
  return names[a];
}

// prod_i m_i^e_i over the scale multipliers m = (m_N, m_E, m_M, m_K, m_L).
struct Exps {
  std::array<double, kNumAxes> e{};
  double& operator[](Axis a) { return e[static_cast<int>(a)]; }
  double operator[](Axis a) const { return e[static_cast<int>(a)]; }
  Exps& add(Axis a, double x) {
    (*this)[a] += x;
    return *this;
  }
  std::string str() const;  // "m_N^-1/2 m_L^-1", or "1"
};

// The model's shape, and the shape the hyperparameters were tuned at.
struct Shape5 {
  int64_t N, Ne, M, K, L;
};
struct ModelShape {
  Shape5 s;            // N, N_e, M, K, L
  int64_t V, T, H;       // vocab, sequence length, heads
  // The dense MLP width F (config::mlp_width) and F / N: F is taken to grow with N (the "F"
  // fan axis scales as m_N), and the base's F is ratio * base N.
  int64_t F = 0;
  double mlp_ratio = 4;
  double base_d_head;    // head size at the base shape
  Shape5 base;
  double mult(Axis a) const;
};

enum class OptimizerKind { Adam, SGD };

struct GroupRule {
  Group group;
  std::string kind;  // input | hidden | output | vector
  std::string in_axis, out_axis;
  int64_t fan_in = 0, fan_out = 0;  // one expert's matrix
  double sigma = 0, eta = 0, base_eps = 0, base_wd = 0;  // base values
  double init_mult = 1, lr_mult = 1;  // [parameterization.multipliers] (already in sigma, eta)
  Exps init_e, mult_e, lr_e, eps_e, wd_e;
  // normal | zero | ones | tied (normal, every expert of a layer a copy of expert 0)
  std::string init_kind = "normal";
  // Resolved values. effective_decay = lr * weight_decay: the decay per step at peak LR.
  double init_std = 0, multiplier = 1, lr = 0, eps = 0, weight_decay = 0, effective_decay = 0;
  std::vector<std::string> overridden;  // entries set by [parameterization.overrides]
  // Whether the model registers this group's tensors: no pos_embed with RoPE, no attention
  // groups without attention, no expert_gate with GELU experts, no mlp_* when every block is
  // MoE. Absent groups keep their rules (a sweep may switch them on) but the text table lists
  // them apart and --diff skips them.
  bool in_model = true;
};

struct LayerRules {
  double depth_alpha = 0;
  double residual_mult = 1;  // m_L^-alpha
  double c_agg = 1;          // gate scale: (K0/K)^alpha, 1 (sum) or 1/K (mean)
  double gate_alpha = 0;     // c_agg = (base_top_k / K)^gate_alpha unless aggregation is set
  int64_t base_top_k = 1;
  ops::Gate gate = ops::Gate::Softmax;
  bool renormalize = true;
  bool expert_bias = false;
  bool aux_selected = false;  // Switch aux loss on the chosen experts' scaled gates (else on all)
  double attn_scale = 0;  // logit scale
  double output_mult = 1;  // = unembed multiplier
  std::vector<std::string> overridden;
};

struct ParamTable {
  std::string preset;
  std::string regime = "-";  // I | II | III, or "-" for a preset that does not need one
  OptimizerKind optimizer = OptimizerKind::Adam;
  ModelShape shape;
  std::array<GroupRule, kNumGroups> groups;
  LayerRules layer;
  const GroupRule& operator[](Group g) const { return groups[static_cast<int>(g)]; }
};

ModelShape model_shape(const config::Config& c);
ParamTable make_param_table(const config::Config& c);
// The regime the config asks for (set, or inferred from the shape); nullopt when it is "auto"
// and the shape does not decide (validate() refuses that for mup and mssp).
std::optional<Regime> config_regime(const config::Config& c);

// Printing: text (aligned columns with formulas), csv, json; and the difference of two tables.
std::string format_table(const ParamTable& t, const std::string& format);
std::string format_diff(const ParamTable& a, const ParamTable& b);

}  // namespace moe::optim
