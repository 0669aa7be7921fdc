// A rank's slice of a batch (data::load_batch) as the model's input tensors on the host; the
// trainer queues them to the device from there (Trainer::upload).
#pragma once
#include <algorithm>

#include "models/transformer.h"
#include "src/data/source.h"

namespace moe::models {

inline Batch host_batch(const data::LocalBatch& lb) {
  Batch b;
  b.inputs = Tensor::empty({int64_t(lb.inputs.size())}, DType::I32);
  b.targets = Tensor::empty({int64_t(lb.targets.size())}, DType::I32);
  std::copy(lb.inputs.begin(), lb.inputs.end(), b.inputs.data<int32_t>());
  std::copy(lb.targets.begin(), lb.targets.end(), b.targets.data<int32_t>());
  return b;
}

}  // namespace moe::models
