// The identity of one checkpoint record (what the manifest indexes), apart from its data and
// from Boost, so that headers reading manifests stay light.
#pragma once
#include <cstdint>
#include <string>

namespace moe::ckpt {

// Format of shard files and manifest; bump on any incompatible change.
constexpr int64_t kFormatVersion = 1;

// kind: "value" | "adam_m" | "adam_v" | "momentum" | "expert_bias"; expert: global expert id, or
// -1 for a dense tensor; [begin, end): elements of the tensor, or of one expert's slice of it.
struct RecordKey {
  std::string kind, name;
  int64_t expert = -1, begin = 0, end = 0;
};

}  // namespace moe::ckpt
