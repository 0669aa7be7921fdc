// Observation hook for coordinate checks: the model reports named activations ("sites") to a
// Probe when one is attached; nothing is recorded otherwise.
#pragma once
#include <string>

#include "src/core/tensor.h"

namespace moe::models {

class Probe {
 public:
  virtual ~Probe() = default;
  // Called during forward with layer index (-1 outside blocks) and the activation.
  virtual void record(const std::string& site, int layer, const Tensor& t) = 0;
};

}  // namespace moe::models
