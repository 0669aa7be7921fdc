// `moe export`: the weights of a checkpoint saved at any layout, as one safetensors file with
// every expert tensor stacked in global expert order (M, ...) and the expert biases; the names
// and shapes are those of the manifest's [[params]] (documented in docs/model.md).
#pragma once
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "src/ops/backend.h"

namespace moe::ckpt {

struct ExportInfo {
  std::string dir;  // the checkpoint read
  int64_t step = 0, tensors = 0, bytes = 0;
};

// Loads the checkpoint's weights into a one-rank model built from its manifest's config, on the
// given backend, and writes `out` (checked first: an InputError for a device, symlink, FIFO or
// directory, before the checkpoint is read). `one_rank` must be a communicator of size 1.
ExportInfo export_safetensors(const std::string& checkpoint, const std::string& out,
                              std::unique_ptr<comm::Communicator> one_rank, ops::Backend& backend);

}  // namespace moe::ckpt
