// Regime names and inference from the shape (see regime.h).
#include "src/optim/regime.h"

#include <vector>

namespace moe::optim {

const char* regime_name(Regime r) {
  switch (r) {
    case Regime::I: return "I";
    case Regime::II: return "II";
    case Regime::III: return "III";
  }
  return "?";
}

std::optional<Regime> regime_from_name(const std::string& s) {
  if (s == "I") return Regime::I;
  if (s == "II") return Regime::II;
  if (s == "III") return Regime::III;
  return std::nullopt;
}

std::optional<Regime> infer_regime(const DimsVsBase& d, std::string* why) {
  const bool n = d.N != d.N0, ne = d.Ne != d.Ne0, m = d.M != d.M0, k = d.K != d.K0;
  std::vector<std::string> differ;
  if (n) differ.push_back("N");
  if (ne) differ.push_back("N_e");
  if (m) differ.push_back("M");
  if (k) differ.push_back("K");
  std::string list;
  for (size_t i = 0; i < differ.size(); ++i) list += (i ? ", " : "") + differ[i];
  if (differ.empty()) {
    if (why) *why = "the shape is the base shape (N, N_e, M, K all at base), which every regime contains";
    return std::nullopt;
  }
  if (!m && !k) return Regime::I;    // only N and/or N_e grow
  if (!ne) return Regime::II;        // M and/or K grow with N_e at base
  if (n && ne && m && k) return Regime::III;
  if (why)
    *why = "the shape differs from the base in " + list +
           ", which fits no regime (I: N, N_e; II: N, M, K with N_e at base; III: N, N_e, M and K)";
  return std::nullopt;
}

}  // namespace moe::optim
