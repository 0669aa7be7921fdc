// The parameter groups of parameterization.md: every trainable tensor belongs to one, and the
// parameterization table has one row per group.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace moe::optim {

enum class Group : int {
  Embed,
  PosEmbed,
  AttnQKV,
  AttnOut,
  Router,
  ExpertUp,
  ExpertGate,
  ExpertDown,
  Norm,
  Unembed,
  MlpUp,    // the dense MLP of blocks without an MoE layer (moe.stride > 1): (F, N)
  MlpDown,  // (N, F)
};
constexpr int kNumGroups = 12;

constexpr std::array<std::string_view, kNumGroups> kGroupNames = {
    "embed", "pos_embed", "attn_qkv", "attn_out", "router", "expert_up",
    "expert_gate", "expert_down", "norm", "unembed", "mlp_up", "mlp_down"};

inline std::string_view group_name(Group g) { return kGroupNames[static_cast<int>(g)]; }

inline std::optional<Group> group_from_name(std::string_view s) {
  for (int i = 0; i < kNumGroups; ++i)
    if (kGroupNames[i] == s) return static_cast<Group>(i);
  return std::nullopt;
}

// The matrices of attention and the dense MLP (hidden matrices outside the MoE layer).
inline bool is_dense_matrix(Group g) {
  return g == Group::AttnQKV || g == Group::AttnOut || g == Group::MlpUp || g == Group::MlpDown;
}

inline bool is_expert_group(Group g) {
  return g == Group::ExpertUp || g == Group::ExpertGate || g == Group::ExpertDown;
}

}  // namespace moe::optim
