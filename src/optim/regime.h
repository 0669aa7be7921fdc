// The scaling regimes of the MSSP paper (arXiv 2605.14200): which of (N, N_e, M, K) grow.
// I: N and N_e (M, K at base); II: N, M, K (N_e at base); III: all four. The paper's muP and
// MSSP rules differ by regime, so a preset that depends on it must know it: from the config, or
// inferred from which dimensions differ from the base shape.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace moe::optim {

enum class Regime { I, II, III };

const char* regime_name(Regime r);
std::optional<Regime> regime_from_name(const std::string& s);  // "I" | "II" | "III"

struct DimsVsBase {
  int64_t N, Ne, M, K;    // the model
  int64_t N0, Ne0, M0, K0;  // the base shape
};

// The regime whose growing dimensions include every dimension that differs from the base:
// nothing differs -> nullopt with `why` saying the base shape fits every regime; a set that
// fits none (N_e and M grow but not N, say) -> nullopt with `why` naming the dimensions.
std::optional<Regime> infer_regime(const DimsVsBase& d, std::string* why);

}  // namespace moe::optim
