// Checks on which keys a config gives, which the typed structs cannot make (a missing key there
// silently takes its default): a preset that scales from a base shape needs the base shape, and
// a base shape must be complete.
#pragma once
#include <toml++/toml.h>

#include "src/config/toml_reader.h"

namespace moe::config {

// Throws InputError (through ctx, so an overridden key names its --set) when
// parameterization.preset is explicitly set to "mup" or "mssp" without parameterization.base, or
// when a base table lacks one of width, expert_width, experts, top_k, depth.
void check_presence(const toml::table& root, const TomlContext& ctx);

}  // namespace moe::config
