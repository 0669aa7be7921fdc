// Manifests written before 2026-12 (no forward.gelu): their "gelu" was the tanh form, so they
// read as "gelu_tanh" (eval and export compute what the weights were trained with, and resuming
// under the exact "gelu" is refused with the reason), and their 6-digit param_table matches
// today's table of the same config; today's manifests are compared digit for digit.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/ckpt/manifest.h"
#include "src/core/error.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

// The table as the old printer wrote it: every number cell at %.6g.
std::string six_digit_csv(const std::string& csv) {
  std::istringstream in(csv);
  std::string out, line;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::string cell, row;
    for (bool first = true; std::getline(cells, cell, ','); first = false) {
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      if (!cell.empty() && *end == '\0') {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", v);
        cell = buf;
      }
      row += (first ? "" : ",") + cell;
    }
    if (!line.empty() && line.back() == ',') row += ",";
    out += row + "\n";
  }
  return out;
}

struct Saved {
  std::string path;
  ckpt::Manifest read;
};

// A manifest of `cfg` as written today, or (old) without forward.gelu and with a 6-digit table.
Saved save(const config::Config& cfg, bool old, const std::string& name) {
  const optim::ParamTable table = optim::make_param_table(cfg);
  ckpt::Manifest m;
  m.config = config::to_toml(cfg);
  m.param_table = optim::format_table(table, "csv");
  m.forward = ckpt::forward_constants(cfg, table);
  m.experts = cfg.moe.experts;
  std::string text = ckpt::manifest_to_toml(m);
  if (old) {
    m.param_table = six_digit_csv(m.param_table);
    text = ckpt::manifest_to_toml(m);
    const size_t at = text.find("gelu = ");
    EXPECT_NE(at, std::string::npos);
    text.erase(at, text.find('\n', at) + 1 - at);
  }
  Saved s{::testing::TempDir() + "moe_manifest_" + name + ".toml", {}};
  std::ofstream(s.path) << text;
  s.read = ckpt::read_manifest(s.path);
  return s;
}

std::string refusal(const Saved& s, const config::Config& cfg) {
  try {
    ckpt::check_same_model(s.read, s.path, cfg, optim::make_param_table(cfg));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

config::Config with_activation(const std::string& a) {
  config::Config c = small_moe_config();
  c.moe.activation = a;
  c.optim.eps = 1e-8 / 3;  // a table number that 6 digits do not hold
  return c;
}

// The same model with another forward multiplier of the output layer (m_N^-1 at twice the base).
config::Config other_multiplier(config::Config c) {
  config::Exponents e;
  e.N = -1.0;
  c.parameterization.overrides["unembed"].multiplier = e;
  c.parameterization.base.width = c.model.width / 2;
  return c;
}

TEST(ManifestLegacy, OldGeluReadsAsTanhAndItsTableAtSixDigits) {
  const config::Config gelu = with_activation("gelu"), tanh_form = with_activation("gelu_tanh");
  const Saved old = save(gelu, true, "old");
  EXPECT_TRUE(old.read.before_exact_gelu);
  EXPECT_TRUE(Contains(old.read.config, "activation = 'gelu_tanh'")) << old.read.config;
  EXPECT_EQ(config::parse_config(old.read.config, "old", {}).moe.activation, "gelu_tanh");
  // The function it was trained with loads; the exact GELU is a change of model, with the reason.
  EXPECT_EQ(refusal(old, tanh_form), "");
  const std::string msg = refusal(old, gelu);
  EXPECT_TRUE(Contains(msg, "moe.activation differs")) << msg;
  EXPECT_TRUE(Contains(msg, "when \"gelu\" meant the tanh form")) << msg;
  // Another forward multiplier is still refused (learning rates and eps are the resume rule's,
  // src/run/config_changes.h).
  EXPECT_TRUE(Contains(refusal(old, other_multiplier(tanh_form)), "parameterization table unembed.multiplier"))
      << refusal(old, other_multiplier(tanh_form));
  fs::remove(old.path);
}

TEST(ManifestLegacy, TodaysManifestsAreExactAndKeepGelu) {
  for (const char* a : {"gelu", "gelu_tanh", "swiglu"}) {
    const config::Config c = with_activation(a);
    const Saved now = save(c, false, a);
    EXPECT_FALSE(now.read.before_exact_gelu) << a;
    EXPECT_EQ(config::parse_config(now.read.config, "now", {}).moe.activation, a);
    EXPECT_EQ(refusal(now, c), "") << a;
    fs::remove(now.path);
  }
  // Numbers compare to 6 significant digits in any manifest; a multiplier that differs is refused.
  const config::Config c = with_activation("gelu");
  Saved now = save(c, false, "rounded");
  now.read.param_table = six_digit_csv(now.read.param_table);
  EXPECT_EQ(refusal(now, c), "");
  EXPECT_TRUE(Contains(refusal(now, other_multiplier(c)), "parameterization table unembed.multiplier"))
      << refusal(now, other_multiplier(c));
  fs::remove(now.path);
}

}  // namespace
}  // namespace moe::test
