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
};
constexpr int kNumGroups = 10;

constexpr std::array<std::string_view, kNumGroups> kGroupNames = {
    "embed", "pos_embed", "attn_qkv", "attn_out", "router",
    "expert_up", "expert_gate", "expert_down", "norm", "unembed"};

inline std::string_view group_name(Group g) { return kGroupNames[static_cast<int>(g)]; }

inline std::optional<Group> group_from_name(std::string_view s) {
  for (int i = 0; i < kNumGroups; ++i)
    if (kGroupNames[i] == s) return static_cast<Group>(i);
  return std::nullopt;
}

inline bool is_expert_group(Group g) {
  return g == Group::ExpertUp || g == Group::ExpertGate || g == Group::ExpertDown;
}

}  // namespace moe::optim
