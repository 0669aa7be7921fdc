// A rank's slice of a batch (data::load_batch) as the model's host input tensors.
#pragma once
#include "models/host_batch.h"

namespace moe::test {

using models::host_batch;

}  // namespace moe::test
