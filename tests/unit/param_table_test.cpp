// The sp and jiang tables against values worked out by hand (the paper's mup and mssp are in
// paper_param_table_test.cpp), for both optimizers, at a shape where every multiplier differs
// from 1:
// base (N, Ne, M, K, L) = (128, 128, 8, 2, 4), model = (512, 256, 32, 8, 8), so
// m_N = 4, m_E = 2, m_M = 4, m_K = 4, m_L = 2; sigma = 0.02, eta = 1e-3.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "src/optim/parameterization.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {
using optim::Group;

config::Config scaled(const std::string& preset, const std::string& opt) {
  config::Config c;
  c.parameterization.preset = preset;
  c.parameterization.base = {128, 128, 8, 2, 4, {}};
  c.parameterization.init_std = 0.02;
  c.model.width = 512;
  c.model.heads = 16;  // head size 32 as at the base
  c.model.depth = 8;
  c.moe.expert_width = 256;
  c.moe.experts = 32;
  c.moe.top_k = 8;
  c.optim.name = opt;
  c.optim.lr = 1e-3;
  return c;
}

struct Want {
  Group g;
  double init, lr;
};

void expect_rows(const optim::ParamTable& t, std::initializer_list<Want> rows, const char* what) {
  for (const Want& w : rows) {
    const optim::GroupRule& r = t[w.g];
    EXPECT_NEAR(r.init_std, w.init, 1e-12 + 1e-9 * w.init) << what << " init " << optim::group_name(w.g);
    EXPECT_NEAR(r.lr, w.lr, 1e-15 + 1e-9 * w.lr) << what << " lr " << optim::group_name(w.g);
  }
}

TEST(ParamTable, SpAdam) {
  auto t = optim::make_param_table(scaled("sp", "adamw"));
  // SP: sigma * fan_in multiplier^-1/2 for every matrix, eta everywhere
  expect_rows(t, {{Group::Embed, 0.02, 1e-3}, {Group::AttnQKV, 0.01, 1e-3}, {Group::Router, 0.01, 1e-3},
                  {Group::ExpertUp, 0.01, 1e-3}, {Group::ExpertDown, 0.02 / std::sqrt(2.0), 1e-3},
                  {Group::Unembed, 0.01, 1e-3}}, "sp adam");
  EXPECT_EQ(t.layer.residual_mult, 1.0);
  EXPECT_EQ(t.layer.c_agg, 1.0);
  EXPECT_EQ(t.layer.gate, ops::Gate::Softmax);
  EXPECT_TRUE(t.layer.renormalize);
  EXPECT_FALSE(t.layer.expert_bias);
  EXPECT_NEAR(t.layer.attn_scale, 1 / std::sqrt(32.0), 1e-12);
}

TEST(ParamTable, JiangAdam) {
  auto t = optim::make_param_table(scaled("jiang", "adamw"));
  // alpha = 1: no depth factor on Adam LRs; router sigma/m_N, eta/m_N; down mean-field init
  expect_rows(t, {{Group::AttnQKV, 0.01, 2.5e-4},
                  {Group::Router, 0.005, 2.5e-4},
                  {Group::ExpertUp, 0.01, 2.5e-4},
                  {Group::ExpertGate, 0.01, 2.5e-4},
                  {Group::ExpertDown, 0.02 * 2 / 2, 5e-4},
                  {Group::Unembed, 0.005, 2.5e-4}},
              "jiang adam");
  EXPECT_EQ(t.layer.gate, ops::Gate::Sigmoid);
  EXPECT_FALSE(t.layer.renormalize);
  EXPECT_TRUE(t.layer.expert_bias);
  EXPECT_NEAR(t.layer.c_agg, 1.0 / 8, 1e-15);
  EXPECT_NEAR(t.layer.residual_mult, 0.5, 1e-15);
}

TEST(ParamTable, JiangSgd) {
  auto t = optim::make_param_table(scaled("jiang", "sgd"));
  // muP core * m_K for experts, * m_L^(2 alpha - 1) = 2 for block matrices
  expect_rows(t, {{Group::AttnQKV, 0.01, 2e-3},
                  {Group::Router, 0.005, 2e-3},
                  {Group::ExpertUp, 0.01, 5e-4 * 4 * 2},
                  {Group::ExpertDown, 0.02, 2e-3 * 4 * 2}},
              "jiang sgd");
}

TEST(ParamTable, FansAreOneExpertsAndIndependentOfEp) {
  std::string first;
  for (int64_t ep : {1, 2, 4, 8, 32}) {
    config::Config c = scaled("mssp", "adamw");
    c.parallel.ep = ep;
    auto t = optim::make_param_table(c);
    EXPECT_EQ(t[Group::ExpertUp].fan_in, 512);
    EXPECT_EQ(t[Group::ExpertUp].fan_out, 256);
    EXPECT_EQ(t[Group::ExpertDown].fan_in, 256);
    std::string s = optim::format_table(t, "csv");
    if (first.empty()) first = s;
    EXPECT_EQ(s, first) << "table changed with ep = " << ep;
  }
}

// CSV and JSON are read by programs: every number must read back as the same double (the eps
// of expert groups, 1e-8 / (N M), needs more than 6 digits).
TEST(ParamTable, CsvAndJsonNumbersReadBackExactly) {
  const auto t = optim::make_param_table(scaled("mssp", "adamw"));
  const double eps = t[Group::ExpertDown].eps;
  char six[32];
  std::snprintf(six, sizeof six, "%.6g", eps);
  ASSERT_NE(std::strtod(six, nullptr), eps) << "this table would not tell 6 digits from all";
  const auto field = [](const optim::GroupRule& r, const std::string& col) {
    if (col == "init_std") return r.init_std;
    if (col == "multiplier") return r.multiplier;
    if (col == "lr") return r.lr;
    if (col == "eps") return r.eps;
    if (col == "weight_decay") return r.weight_decay;
    if (col == "effective_decay") return r.effective_decay;
    if (col == "init_mult") return r.init_mult;
    return r.lr_mult;  // "lr_mult"
  };
  const std::vector<std::string> numeric = {"init_std", "multiplier",      "lr",        "eps",
                                            "weight_decay", "effective_decay", "init_mult", "lr_mult"};
  // CSV: the header names the columns.
  std::istringstream csv(optim::format_table(t, "csv"));
  std::string line;
  std::getline(csv, line);
  std::vector<std::string> header;
  for (std::istringstream h(line); std::getline(h, line, ',');) header.push_back(line);
  int rows = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    for (std::istringstream c(line); std::getline(c, line, ',');) cells.push_back(line);
    const optim::GroupRule& r = t[*optim::group_from_name(cells[0])];
    for (size_t j = 0; j < header.size() && j < cells.size(); ++j)
      if (std::find(numeric.begin(), numeric.end(), header[j]) != numeric.end())
        EXPECT_EQ(std::strtod(cells[j].c_str(), nullptr), field(r, header[j])) << cells[0] << "." << header[j];
    ++rows;
  }
  EXPECT_EQ(rows, optim::kNumGroups);
  // JSON: each group's object, "key":number.
  const std::string json = optim::format_table(t, "json");
  for (const optim::GroupRule& r : t.groups) {
    const size_t at = json.find("{\"group\":\"" + std::string(optim::group_name(r.group)) + "\"");
    ASSERT_NE(at, std::string::npos) << optim::group_name(r.group);
    const std::string obj = json.substr(at, json.find('}', at) - at);
    for (const std::string& col : numeric) {
      const size_t k = obj.find("\"" + col + "\":");
      ASSERT_NE(k, std::string::npos) << col;
      EXPECT_EQ(std::strtod(obj.c_str() + k + col.size() + 3, nullptr), field(r, col))
          << optim::group_name(r.group) << "." << col;
    }
  }
}

TEST(ParamTable, BaseShapeGivesBaseValues) {
  config::Config c = scaled("jiang", "adamw");
  c.model.width = 128;
  c.model.heads = 4;
  c.model.depth = 4;
  c.moe.expert_width = 128;
  c.moe.experts = 8;
  c.moe.top_k = 2;
  auto t = optim::make_param_table(c);
  for (const auto& r : t.groups) {
    if (r.init_kind == "normal") EXPECT_NEAR(r.init_std, 0.02, 1e-15) << optim::group_name(r.group);
    EXPECT_NEAR(r.lr, 1e-3, 1e-15) << optim::group_name(r.group);
    EXPECT_EQ(r.multiplier, 1.0);
  }
}

TEST(ParamTable, OverridesAndGroupBases) {
  const char* toml = R"(
[parameterization]
preset = "jiang"
base = { width = 128, expert_width = 128, experts = 8, top_k = 2, depth = 4 }
[parameterization.groups.router]
init_std = 0.1
lr_mult = 0.5
[parameterization.overrides.expert_up]
init = { N = -1 }
lr = { N = -1, K = 1 }
multiplier = { Ne = 0.5 }
[parameterization.overrides.unembed]
zero_init = true
[model]
width = 512
heads = 16
[moe]
expert_width = 512
experts = 32
top_k = 8
gate = "softmax"
[optim]
lr = 1e-3
)";
  config::Config c = config::parse_config(toml, "test", {});
  auto t = optim::make_param_table(c);
  EXPECT_NEAR(t[Group::Router].init_std, 0.1 / 4, 1e-15);    // group sigma, jiang rule
  EXPECT_NEAR(t[Group::Router].lr, 0.5e-3 / 4, 1e-15);        // group eta
  EXPECT_NEAR(t[Group::ExpertUp].init_std, 0.02 / 4, 1e-15);  // override N^-1
  EXPECT_NEAR(t[Group::ExpertUp].lr, 1e-3 / 4 * 4, 1e-15);    // N^-1 K^1
  EXPECT_NEAR(t[Group::ExpertUp].multiplier, 2.0, 1e-15);     // m_E^(1/2), m_E = 4
  EXPECT_EQ(t[Group::ExpertUp].overridden, (std::vector<std::string>{"init", "multiplier", "lr"}));
  EXPECT_EQ(t[Group::Unembed].init_kind, "zero");
  EXPECT_EQ(t[Group::Unembed].init_std, 0.0);
  EXPECT_EQ(t.layer.gate, ops::Gate::Softmax);  // [moe] gate beats the preset
  EXPECT_NE(std::find(t.layer.overridden.begin(), t.layer.overridden.end(), "gate"), t.layer.overridden.end());
  EXPECT_NE(optim::format_table(t, "text").find("init,multiplier,lr"), std::string::npos);
}

TEST(ParamTable, HeadSizeFromBaseHeads) {
  config::Config c = scaled("jiang", "adamw");
  c.model.heads = 4;  // width 512 with 4 heads: head size 128
  EXPECT_NEAR(optim::make_param_table(c).layer.attn_scale, 1 / std::sqrt(128.0), 1e-12);  // assumed base head size
  c.parameterization.base.heads = 4;  // base head size 32: muP scale sqrt(32) / 128
  EXPECT_NEAR(optim::make_param_table(c).layer.attn_scale, std::sqrt(32.0) / 128, 1e-12);
}

}  // namespace
}  // namespace moe::test
