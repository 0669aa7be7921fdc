// Observation hook for coordinate checks: the model reports named activations ("sites") to a
// Probe when one is attached; nothing is recorded otherwise. The inputs of the linear maps are
// sites too (attn_in, attn_heads, moe_in, unembed_in: src/train/coord_observables.h lists which
// map reads which), and a site named "<site>_grad" is d loss / d <site>, recorded in backward.
#pragma once
#include <string>

#include "src/core/tensor.h"

namespace moe::models {

class Probe {
 public:
  virtual ~Probe() = default;
  // Called during forward (backward for "_grad" sites) with the layer index (-1 outside the
  // blocks) and the tensor, (tokens, features).
  virtual void record(const std::string& site, int layer, const Tensor& t) = 0;
};

}  // namespace moe::models
