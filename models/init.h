// Which Philox stream initialises a parameter's unit: the one place that decides it, for the
// host and the device init alike (both run Backend::init_normal over these streams).
#pragma once
#include <cstdint>

#include "src/optim/params.h"

namespace moe::models {

// Stream of unit `local_u` of p (an expert's index on this rank; 0 for dense tensors):
// 0 for dense tensors, 1 + the global expert index for experts, so that an expert's init does
// not depend on which rank holds it; with `tied` (the paper's MSSP in regime III) every expert
// takes expert 0's stream, so tied experts are identical at any expert-parallel size without
// communication.
inline uint32_t init_stream(const optim::Param& p, int64_t local_u, bool tied = false) {
  if (!p.expert) return 0u;
  return tied ? 1u : static_cast<uint32_t>(1 + p.expert_offset + local_u);
}

}  // namespace moe::models
