// The MSSP paper's mup and mssp tables against numbers worked out by hand from its official
// code (vankadara-lab/mssp-moe, transformer-moe-experiments/scaling.py, model.py and config/;
// SGD from mlp-moe-experiments/scaling_configs.py). The code's rules, in absolute form:
//   std:  embedding 0.02, norms ones, unembedding zero, hidden matrices 1/sqrt(fan_in) (all times
//         the group's init_mult); regime I router 1/N (mssp: zero); regime II expert-down
//         sqrt(M / N_e) for mssp; regime III mssp: experts tied to expert 0.
//   lr:   learning_rate * lr_scale * lr_mult, lr_scale = 1 for embedding/norm and
//         BASE_WIDTH / N otherwise (regime II expert-down: 1).
//   eps:  1e-8 * eps_scale, with N and M the model's: I: 1/N except router, output 1;
//         II: embed/attn/norm 1/N, router and expert-up 1/M, expert-down 1/(N M), output 1;
//         III: router 1/M, experts 1/(N M), output 1, the rest 1/N.
//   decay: weight_decay / (lr_scale * lr_mult) on every tensor (0.1 in the paper's train.py),
//         so lr * decay = learning_rate * 0.1 for every group.
#include <cmath>

#include "src/optim/optimizer.h"
#include "src/optim/parameterization.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {
using optim::Group;

// The one line a bad config gives (empty, with a test failure, when it parses).
std::string ConfigError(const std::string& toml) {
  try {
    config::parse_config(toml, "test.toml", {});
  } catch (const InputError& e) {
    EXPECT_EQ(e.exit_code(), kExitBadInput);
    return e.what();
  }
  ADD_FAILURE() << "no InputError for:\n" << toml;
  return "";
}

// A paper config at the shape (N, heads, M, K, N_e), with the preset.
config::Config with_shape(const std::string& toml, const std::string& preset, int64_t N, int64_t H, int64_t M, int64_t K,
                          int64_t Ne) {
  auto set = [](const char* k, int64_t v) { return std::string(k) + "=" + std::to_string(v); };
  return config::parse_config(toml, "paper config", {"parameterization.preset=" + preset, set("model.width", N),
                                                     set("model.heads", H), set("moe.experts", M), set("moe.top_k", K),
                                                     set("moe.expert_width", Ne)});
}

// The paper's allscale (regime III) config at d_model = 256 and at a multiple of it:
// config/allscale/sparse/d_model=256.py (n_head 4, n_exp 8, top_k 4, moe_ratio 0.5,
// lr 4.64159e-3, tuned multipliers) and d_model=1024.py (n_head 16, n_exp 32, top_k 16).
config::Config allscale(const std::string& preset, int scale) {
  std::string toml = R"(
[model]
vocab = 512
seq_len = 64
depth = 8
[moe]
[parameterization]
regime = "III"
base = { width = 256, expert_width = 128, experts = 8, top_k = 4, depth = 8 }
[parameterization.multipliers]
embed = { lr = 16 }
attn_qkv = { lr = 2 }
attn_out = { lr = 2 }
expert_up = { lr = 2 }
expert_down = { lr = 128, init = 4 }
router = { lr = 8 }
unembed = { lr = 8 }
[optim]
lr = 4.64159e-3
weight_decay = 0.1
eps = 1e-8
)";
  return with_shape(toml, preset, 256 * scale, 4 * scale, 8 * scale, 4 * scale, 128 * scale);
}

// config/bottleneck/sparse/d_model=256.py (regime II: n_exp 64, top_k 32, moe_ratio 1/16,
// lr 7.74e-3, no multipliers) and d_model=1024.py (n_exp 256, top_k 128, moe_ratio 1/64).
config::Config bottleneck(const std::string& preset, int scale) {
  std::string toml = R"(
[model]
vocab = 512
seq_len = 64
depth = 8
[parameterization]
regime = "II"
base = { width = 256, expert_width = 16, experts = 64, top_k = 32, depth = 8 }
[optim]
lr = 7.74e-3
weight_decay = 0.1
)";
  return with_shape(toml, preset, 256 * scale, 4 * scale, 64 * scale, 32 * scale, 16);
}

struct Want {
  Group g;
  const char* init;  // normal | zero | ones | tied
  double std, lr, eps, wd;
};

void expect_rows(const optim::ParamTable& t, std::initializer_list<Want> rows, const std::string& what) {
  auto near = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::abs(b) + 1e-300; };
  for (const Want& w : rows) {
    const optim::GroupRule& r = t[w.g];
    const std::string name = what + " " + std::string(optim::group_name(w.g));
    EXPECT_EQ(r.init_kind, w.init) << name;
    EXPECT_PRED2(near, r.init_std, w.std) << name << " init std";
    EXPECT_PRED2(near, r.lr, w.lr) << name << " lr";
    EXPECT_PRED2(near, r.eps, w.eps) << name << " eps";
    EXPECT_PRED2(near, r.weight_decay, w.wd) << name << " weight decay";
  }
}

TEST(PaperTable, AllscaleBaseMssp) {
  auto t = optim::make_param_table(allscale("mssp", 1));
  const double lr = 4.64159e-3;
  // N = 256, M = 8: lr_scale 1 everywhere at the base; decay 0.1 / lr_mult.
  expect_rows(t,
              {{Group::Embed, "normal", 0.02, lr * 16, 1e-8 / 256, 0.1 / 16},
               {Group::Norm, "ones", 0, lr, 1e-8 / 256, 0.1},
               {Group::AttnQKV, "normal", 1 / 16.0, lr * 2, 1e-8 / 256, 0.1 / 2},
               {Group::AttnOut, "normal", 1 / 16.0, lr * 2, 1e-8 / 256, 0.1 / 2},
               {Group::Router, "normal", 1 / 16.0, lr * 8, 1e-8 / 8, 0.1 / 8},
               {Group::ExpertUp, "tied", 1 / 16.0, lr * 2, 1e-8 / (256 * 8), 0.1 / 2},
               {Group::ExpertDown, "tied", 4 / std::sqrt(128.0), lr * 128, 1e-8 / (256 * 8), 0.1 / 128},
               {Group::Unembed, "zero", 0, lr * 8, 1e-8, 0.1 / 8}},
              "allscale 256 mssp");
  EXPECT_EQ(t.regime, "III");
  EXPECT_DOUBLE_EQ(t.layer.c_agg, 0.25);  // (base_top_k 1 / K 4)^1
  EXPECT_EQ(t.layer.gate, ops::Gate::Sigmoid);
  EXPECT_FALSE(t.layer.renormalize);
  EXPECT_FALSE(t.layer.expert_bias);
  EXPECT_TRUE(t.layer.aux_selected);
  EXPECT_DOUBLE_EQ(t.layer.attn_scale, 1 / 8.0);  // d_head 64
  EXPECT_DOUBLE_EQ(t.layer.residual_mult, 1.0);
  for (const auto& r : t.groups) EXPECT_NEAR(r.effective_decay, lr * 0.1, 1e-15) << optim::group_name(r.group);
}

TEST(PaperTable, AllscaleFourTimesMupAndMssp) {
  // d_model = 1024: N = 1024, M = 32, K = 16, N_e = 512; lr_scale = 256/1024 = 1/4.
  const double lr = 4.64159e-3;
  for (const char* preset : {"mup", "mssp"}) {
    auto t = optim::make_param_table(allscale(preset, 4));
    const char* ex = std::string(preset) == "mssp" ? "tied" : "normal";
    expect_rows(t,
                {{Group::Embed, "normal", 0.02, lr * 16, 1e-8 / 1024, 0.1 / 16},
                 {Group::Norm, "ones", 0, lr, 1e-8 / 1024, 0.1},
                 {Group::AttnQKV, "normal", 1 / 32.0, lr * 2 / 4, 1e-8 / 1024, 0.1 / 0.5},
                 {Group::Router, "normal", 1 / 32.0, lr * 8 / 4, 1e-8 / 32, 0.1 / 2},
                 {Group::ExpertUp, ex, 1 / 32.0, lr * 2 / 4, 1e-8 / (1024 * 32), 0.1 / 0.5},
                 {Group::ExpertDown, ex, 4 / std::sqrt(512.0), lr * 128 / 4, 1e-8 / (1024 * 32), 0.1 / 32},
                 {Group::Unembed, "zero", 0, lr * 8 / 4, 1e-8, 0.1 / 2}},
                std::string("allscale 1024 ") + preset);
    EXPECT_DOUBLE_EQ(t.layer.c_agg, 1 / 16.0);
  }
}

TEST(PaperTable, BottleneckBaseAndFourTimes) {
  const double lr = 7.74e-3;
  // d_model 256: N = 256, M = 64, N_e = 16. mssp expert-down sqrt(M / N_e) = 2, mup 1/4.
  for (const char* preset : {"mup", "mssp"}) {
    const bool mssp = std::string(preset) == "mssp";
    auto t = optim::make_param_table(bottleneck(preset, 1));
    expect_rows(t,
                {{Group::Embed, "normal", 0.02, lr, 1e-8 / 256, 0.1},
                 {Group::Norm, "ones", 0, lr, 1e-8 / 256, 0.1},
                 {Group::AttnOut, "normal", 1 / 16.0, lr, 1e-8 / 256, 0.1},
                 {Group::Router, "normal", 1 / 16.0, lr, 1e-8 / 64, 0.1},
                 {Group::ExpertUp, "normal", 1 / 16.0, lr, 1e-8 / 64, 0.1},
                 {Group::ExpertDown, "normal", mssp ? 2.0 : 0.25, lr, 1e-8 / (256 * 64), 0.1},
                 {Group::Unembed, "zero", 0, lr, 1e-8, 0.1}},
                std::string("bottleneck 256 ") + preset);
    // d_model 1024: N = 1024, M = 256, N_e = 16; lr_scale 1/4 except expert-down (1).
    auto u = optim::make_param_table(bottleneck(preset, 4));
    expect_rows(u,
                {{Group::Embed, "normal", 0.02, lr, 1e-8 / 1024, 0.1},
                 {Group::AttnQKV, "normal", 1 / 32.0, lr / 4, 1e-8 / 1024, 0.4},
                 {Group::Router, "normal", 1 / 32.0, lr / 4, 1e-8 / 256, 0.4},
                 {Group::ExpertUp, "normal", 1 / 32.0, lr / 4, 1e-8 / 256, 0.4},
                 {Group::ExpertDown, "normal", mssp ? 4.0 : 0.25, lr, 1e-8 / (1024 * 256), 0.1},
                 {Group::Unembed, "zero", 0, lr / 4, 1e-8, 0.4}},
                std::string("bottleneck 1024 ") + preset);
    EXPECT_DOUBLE_EQ(u.layer.c_agg, 1 / 128.0);
  }
}

// The dense MLP of the blocks without an MoE layer (moe.stride > 1): the code's mlp_up and
// mlp_down are hidden matrices in every regime (1/sqrt(fan_in), lr_scale BASE_WIDTH / N, eps
// 1/N), of width mlp_ratio 4 times N. Regime II at N = 256 and 1024.
TEST(PaperTable, DenseMlpIsHiddenInEveryRegime) {
  const double lr = 7.74e-3;
  for (int scale : {1, 4}) {
    config::Config c = bottleneck("mssp", scale);
    c.model.depth = 8;
    c.moe.stride = 2;
    const double N = 256.0 * scale;
    auto t = optim::make_param_table(c);
    expect_rows(t,
                {{Group::MlpUp, "normal", 1 / std::sqrt(N), lr / scale, 1e-8 / N, 0.1 * scale},
                 {Group::MlpDown, "normal", 1 / std::sqrt(4 * N), lr / scale, 1e-8 / N, 0.1 * scale}},
                "bottleneck mlp x" + std::to_string(scale));
    EXPECT_EQ(t[Group::MlpUp].fan_out, int64_t(4 * N));
    EXPECT_EQ(t[Group::MlpDown].fan_in, int64_t(4 * N));
    EXPECT_EQ(t[Group::MlpDown].init_e.str(), "m_N^-1/2");  // F grows with N
  }
  // An explicit width keeps its ratio at the base: F = 3 N there too.
  config::Config c = allscale("mup", 2);
  c.model.mlp_width = 3 * 512;
  auto t = optim::make_param_table(c);
  EXPECT_NEAR(t[Group::MlpDown].init_std, 1 / std::sqrt(3 * 512.0), 1e-15);
  EXPECT_NEAR(t[Group::MlpDown].lr, 4.64159e-3 / 2, 1e-15);
}

// Regime I (no transformer config in the paper's code; MupFixedE with a zero router for MSSP):
// base N = N_e = 256, M = 8, K = 2, and 4x in N and N_e.
TEST(PaperTable, RegimeOneRouter) {
  for (int scale : {1, 4}) {
    for (const char* preset : {"mup", "mssp"}) {
      config::Config c = allscale(preset, 1);
      c.parameterization.multipliers.clear();
      c.parameterization.regime = "I";
      c.model.width = c.moe.expert_width = 256 * scale;
      c.parameterization.base.expert_width = 256;
      c.model.heads = 4 * scale;
      auto t = optim::make_param_table(c);
      const double lr = 4.64159e-3, N = 256.0 * scale;
      const bool mssp = std::string(preset) == "mssp";
      expect_rows(t,
                  {{Group::Router, mssp ? "zero" : "normal", mssp ? 0.0 : 1 / N, lr / scale, 1e-8, 0.1 * scale},
                   {Group::ExpertUp, "normal", 1 / std::sqrt(N), lr / scale, 1e-8 / N, 0.1 * scale},
                   {Group::ExpertDown, "normal", 1 / std::sqrt(N), lr / scale, 1e-8 / N, 0.1 * scale},
                   {Group::Unembed, "zero", 0, lr / scale, 1e-8, 0.1 * scale},
                   {Group::Embed, "normal", 0.02, lr, 1e-8 / N, 0.1}},
                  std::string("regime I ") + preset + " x" + std::to_string(scale));
      EXPECT_EQ(t[Group::Router].kind, "output");
    }
  }
}

// SGD (mlp-moe-experiments/scaling_configs.py, relative to the base): input N, output 1/N;
// I: router 1/N, experts 1; II: router and expert-up M/N, expert-down M N; III: router 1,
// experts M. Attention (absent from the MLP) is a hidden square matrix: 1. At 4x every
// dimension that grows grows by 4.
TEST(PaperTable, SgdRatesInEachRegime) {
  struct Case {
    const char* regime;
    double router, up, down;
  };
  for (Case k : {Case{"I", 0.25, 1, 1}, Case{"II", 1, 1, 16}, Case{"III", 1, 4, 4}}) {
    config::Config c = k.regime == std::string("II") ? bottleneck("mssp", 4) : allscale("mssp", 4);
    c.parameterization.multipliers.clear();
    c.optim.name = "sgd";
    if (k.regime == std::string("I")) {
      c.moe.experts = 8;
      c.moe.top_k = 4;
    }
    c.parameterization.regime = k.regime;
    auto t = optim::make_param_table(c);
    const double lr = c.optim.lr;
    EXPECT_NEAR(t[Group::Embed].lr, lr * 4, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::Norm].lr, lr * 4, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::AttnQKV].lr, lr, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::Unembed].lr, lr / 4, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::Router].lr, lr * k.router, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::ExpertUp].lr, lr * k.up, 1e-15) << k.regime;
    EXPECT_NEAR(t[Group::ExpertDown].lr, lr * k.down, 1e-15) << k.regime;
  }
  // MSSP in regime II (SGD) keeps the sqrt(M) expert-down init: sqrt(256 / 16) = 4.
  config::Config c = bottleneck("mssp", 4);
  c.optim.name = "sgd";
  EXPECT_NEAR(optim::make_param_table(c)[Group::ExpertDown].init_std, 4.0, 1e-12);
}

TEST(PaperTable, MupAndMsspDifferOnlyAtInit) {
  for (auto make : {allscale, bottleneck}) {
    for (int scale : {1, 4}) {
      auto a = optim::make_param_table(make("mup", scale)), b = optim::make_param_table(make("mssp", scale));
      int init_differs = 0;
      for (int g = 0; g < optim::kNumGroups; ++g) {
        EXPECT_EQ(a.groups[g].lr, b.groups[g].lr);
        EXPECT_EQ(a.groups[g].eps, b.groups[g].eps);
        EXPECT_EQ(a.groups[g].weight_decay, b.groups[g].weight_decay);
        init_differs += a.groups[g].init_kind != b.groups[g].init_kind || a.groups[g].init_std != b.groups[g].init_std;
      }
      EXPECT_GE(init_differs, 1);
      EXPECT_EQ(optim::format_table(a, "csv").size() > 0, true);
      EXPECT_EQ(a.layer.c_agg, b.layer.c_agg);
      EXPECT_EQ(a.layer.aux_selected, b.layer.aux_selected);
    }
  }
}

TEST(PaperTable, GlobalEpsIsTheSecondBaseline) {
  config::Config c = allscale("mup", 4);
  c.parameterization.global_eps = true;
  for (const auto& r : optim::make_param_table(c).groups) EXPECT_EQ(r.eps, 1e-8) << optim::group_name(r.group);
}

TEST(PaperTable, RegimeInference) {
  auto regime_of = [](config::Config c) { return optim::make_param_table(c).regime; };
  config::Config c = allscale("mup", 2);
  c.parameterization.regime = "auto";
  EXPECT_EQ(regime_of(c), "III");
  c.moe.experts = 8;
  c.moe.top_k = 4;
  EXPECT_EQ(regime_of(c), "I");  // N and N_e grow
  config::Config d = bottleneck("mssp", 2);
  d.parameterization.regime = "auto";
  EXPECT_EQ(regime_of(d), "II");
  // Base shape, or N_e and M growing without N and K: auto is an error naming the dimensions.
  EXPECT_TRUE(Contains(ConfigError(R"(
[parameterization]
preset = "mssp"
base = { width = 128, expert_width = 128, experts = 8, top_k = 2, depth = 4 }
)"),
                       "parameterization.regime: \"auto\" cannot decide: the shape is the base shape"));
  EXPECT_TRUE(Contains(ConfigError(R"(
[moe]
expert_width = 256
experts = 16
[parameterization]
preset = "mup"
base = { width = 128, expert_width = 128, experts = 8, top_k = 2, depth = 4 }
)"),
                       "differs from the base in N_e, M, which fits no regime"));
  // sp and jiang do not need one.
  config::Config e = allscale("sp", 1);
  e.parameterization.regime = "auto";
  EXPECT_EQ(regime_of(e), "-");
}

TEST(PaperTable, BadMultipliersAndRegimesAreInputErrors) {
  const std::string head = "[parameterization]\npreset = \"mssp\"\nregime = \"III\"\n";
  EXPECT_TRUE(Contains(ConfigError(head + "[parameterization.multipliers]\nrouterr = { lr = 2 }\n"),
                       "parameterization.multipliers.routerr: unknown parameter group"));
  EXPECT_TRUE(Contains(ConfigError(head + "[parameterization.multipliers]\nrouter = { lrr = 2 }\n"),
                       "parameterization.multipliers.router.lrr"));
  EXPECT_TRUE(Contains(ConfigError(head + "[parameterization.multipliers]\nrouter = { lr = -2 }\n"),
                       "parameterization.multipliers.router.lr: must be > 0"));
  EXPECT_TRUE(Contains(ConfigError(head + "[parameterization.multipliers]\nrouter = { lr = \"2\" }\n"),
                       "parameterization.multipliers.router.lr"));
  EXPECT_TRUE(Contains(ConfigError("[parameterization]\nregime = \"IV\"\n"), "parameterization.regime: \"IV\" is not one of"));
  EXPECT_TRUE(Contains(ConfigError(head + "scale_eps = true\n"), "parameterization.scale_eps"));
  EXPECT_TRUE(Contains(ConfigError("[moe]\ngate_alpha = 1.0\naggregation = \"mean\"\n"), "moe.gate_alpha"));
  EXPECT_TRUE(Contains(ConfigError("[moe]\naux_probs = \"some\"\n"), "moe.aux_probs"));
}

// Groups the model does not register are listed apart in the text, marked in the CSV and JSON,
// and left out of --diff: RoPE has no position table, GELU experts no gate, an all-MoE stack
// no dense MLP.
TEST(PaperTable, GroupsNotInTheModelAreMarked) {
  config::Config c = allscale("mssp", 1);
  c.model.position = "rope";
  c.moe.activation = "gelu";
  c.moe.stride = 1;
  const optim::ParamTable t = optim::make_param_table(c);
  for (Group g : {Group::PosEmbed, Group::ExpertGate, Group::MlpUp, Group::MlpDown})
    EXPECT_FALSE(t[g].in_model) << optim::group_name(g);
  for (Group g : {Group::Embed, Group::AttnQKV, Group::Router, Group::ExpertUp, Group::Unembed})
    EXPECT_TRUE(t[g].in_model) << optim::group_name(g);
  const std::string text = optim::format_table(t, "text");
  EXPECT_FALSE(Contains(text, "\npos_embed "));
  EXPECT_FALSE(Contains(text, "\nexpert_gate "));
  EXPECT_TRUE(Contains(text, "(not in this model: pos_embed, expert_gate, mlp_up, mlp_down)"));
  const std::string csv = optim::format_table(t, "csv");
  EXPECT_TRUE(Contains(csv, ",overridden,in_model\n"));
  EXPECT_TRUE(Contains(csv, ",false\n"));
  EXPECT_TRUE(Contains(optim::format_table(t, "json"), "\"in_model\":false"));
  c.model.position = "learned";
  c.moe.activation = "swiglu";
  c.moe.stride = 2;
  c.model.depth = 4;
  const optim::ParamTable all = optim::make_param_table(c);
  for (const auto& r : all.groups) EXPECT_TRUE(r.in_model) << optim::group_name(r.group);
  EXPECT_FALSE(Contains(optim::format_table(all, "text"), "not in this model"));
  const std::string diff = optim::format_diff(t, t);
  EXPECT_FALSE(Contains(diff, "pos_embed"));
  EXPECT_TRUE(Contains(diff, "router"));
}

TEST(PaperTable, TableTextNamesRegimeAndColumns) {
  auto t = optim::make_param_table(allscale("mssp", 4));
  const std::string text = optim::format_table(t, "text");
  EXPECT_TRUE(Contains(text, "preset mssp, regime III, optimizer adam"));
  EXPECT_TRUE(Contains(text, "tied"));
  const std::string csv = optim::format_table(t, "csv");
  EXPECT_TRUE(Contains(csv, "group,kind,fan_in,fan_out,init_std,multiplier,lr,eps,weight_decay,init,effective_decay"));
  EXPECT_TRUE(Contains(csv, "\nexpert_down,hidden,512,1024,"));
  const std::string json = optim::format_table(t, "json");
  EXPECT_TRUE(Contains(json, "\"regime\":\"III\""));
  EXPECT_TRUE(Contains(json, "\"effective_decay\""));
  // --diff between the base and 4x prints every group's ratios.
  const std::string diff = optim::format_diff(optim::make_param_table(allscale("mssp", 1)), t);
  EXPECT_TRUE(Contains(diff, "router"));
  EXPECT_TRUE(Contains(diff, "0.25"));   // lr ratio of the hidden groups
  EXPECT_TRUE(Contains(diff, "0.0625"));  // eps ratio of the experts: 1/(N M) at 4x N and 4x M
}

// One AdamW step through the Optimizer with the paper's table: each group's eps enters the
// denominator and every group decays by eta * lambda, whatever its learning rate.
TEST(PaperTable, AdamWStepUsesGroupEpsAndEffectiveDecay) {
  config::Config c = allscale("mssp", 1);
  c.optim.schedule = "constant";
  c.optim.warmup = 0;
  c.optim.grad_clip = 0;
  optim::ParamTable table = optim::make_param_table(c);
  optim::ParamStore store;
  optim::Param* a = store.add("embed", Group::Embed, {2});
  optim::Param* r = store.add("router", Group::Router, {2});
  optim::Param* e = store.add("expert_down", Group::ExpertDown, {1, 2}, true, 0);
  store.allocate(DType::F64, Device::CPU);
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu());
  optim::Optimizer opt(c.optim, 10, table, store, ctx, false);
  // gradients of the size of the eps values, so that eps visibly changes the step
  const double g = 2e-11;
  for (optim::Param* p : {a, r, e})
    for (int64_t i = 0; i < 2; ++i) {
      set(p->value, i, 0.5);
      set(p->grad, i, g);
    }
  optim::StepInfo info = opt.reduce_gradients();
  opt.apply(1, info);
  const double lr = 4.64159e-3, lambda = 0.1;
  struct Expect {
    optim::Param* p;
    double lr_g, eps_g;
  };
  for (Expect x : {Expect{a, lr * 16, 1e-8 / 256}, Expect{r, lr * 8, 1e-8 / 8}, Expect{e, lr * 128, 1e-8 / 2048}}) {
    // step 1: m_hat = g, v_hat = g^2: p -= lr_g (g / (|g| + eps_g) + (lambda / lr_mult) p)
    const double want = 0.5 - x.lr_g * g / (g + x.eps_g) - lr * lambda * 0.5;
    EXPECT_NEAR(get(x.p->value, 0), want, 1e-15) << x.p->name;
  }
}

}  // namespace
}  // namespace moe::test
