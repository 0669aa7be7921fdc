// Presence checks on the parsed TOML tree (after --set overrides), once the typed read and the
// value checks have passed, so that a misspelt key or a bad value is reported first.
#include "src/config/presence.h"

#include <string>

namespace moe::config {

void check_presence(const toml::table& root, const TomlContext& ctx) {
  const toml::table* p = root["parameterization"].as_table();
  if (!p) return;  // every key from configs/default.toml, base included
  const toml::node* base = p->get("base");
  if (base && base->is_table()) {
    // A partial base would fill the rest from the built-in defaults (128, 128, 8, 2, 4), which
    // silently gives the wrong multipliers whenever the tuning shape was another one.
    for (const char* k : {"width", "expert_width", "experts", "top_k", "depth"})
      if (!base->as_table()->get(k))
        ctx.fail(std::string("parameterization.base.") + k,
                 "missing: a base shape needs width, expert_width, experts, top_k and depth");
    return;
  }
  if (base) return;  // not a table: the typed read reports its type
  const toml::node* preset = p->get("preset");
  const std::string name = preset && preset->is_string() ? *preset->value<std::string>() : "";
  if (name == "mup" || name == "mssp" || name == "jiang")
    ctx.fail(
        "parameterization.base",
        "missing: preset \"" + name +
            "\" scales init and learning rates from the shape they were tuned at; give "
            "base = { width = ..., expert_width = ..., experts = ..., top_k = ..., depth = ... }");
}

}  // namespace moe::config
