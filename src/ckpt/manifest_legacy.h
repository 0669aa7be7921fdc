// What manifests written before 2026-12 meant, read in today's terms: moe.activation = "gelu"
// was the tanh form (now "gelu_tanh"; "gelu" is the exact erf GELU). Such a manifest has no
// forward.gelu key. (Its param_table's numbers had 6 significant digits: check_same_model
// compares numbers to 6 digits.)
#pragma once
#include <toml++/toml.h>

#include <string>

#include "src/ckpt/manifest.h"

namespace moe::ckpt {

// Sets m.before_exact_gelu for a manifest without forward.gelu, and then renames its stored
// config's moe.activation "gelu" to "gelu_tanh": eval and export compute what the weights were
// trained with, and a resume under "gelu" is refused as a change of model.
void read_legacy(Manifest& m, const toml::table& root);

// For a refused change of moe.activation: what an older manifest's "gelu" was; "" otherwise.
std::string activation_hint(const Manifest& m, const std::string& key);

}  // namespace moe::ckpt
