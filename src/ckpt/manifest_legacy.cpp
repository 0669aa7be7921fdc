// Reading manifests written before the exact GELU and round-trip table numbers (2026-12).
#include "src/ckpt/manifest_legacy.h"

#include <sstream>

namespace moe::ckpt {

void read_legacy(Manifest& m, const toml::table& root) {
  if (root["forward"]["gelu"]) return;
  m.before_exact_gelu = true;
  toml::table cfg;
  try {
    cfg = toml::parse(m.config);
  } catch (const toml::parse_error&) {
    return;  // check_same_model names the bad stored config
  }
  toml::table* moe = cfg["moe"].as_table();
  const auto* activation = moe ? moe->get_as<std::string>("activation") : nullptr;
  if (!activation || activation->get() != "gelu") return;
  moe->insert_or_assign("activation", "gelu_tanh");
  std::ostringstream os;  // the form config::to_toml writes
  os << cfg << "\n";
  m.config = os.str();
}

std::string activation_hint(const Manifest& m, const std::string& key) {
  if (!m.before_exact_gelu || key != "activation") return "";
  return "; this checkpoint is from before 2026-12, when \"gelu\" meant the tanh form, which is "
         "\"gelu_tanh\" now (\"gelu\" is the exact erf GELU)";
}

}  // namespace moe::ckpt
