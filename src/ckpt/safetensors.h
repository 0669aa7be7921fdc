// Writing .safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header (padded with spaces to a multiple of 8),
// then the tensors' bytes back to back. Each header entry gives dtype, shape and data_offsets
// [begin, end) relative to the start of the data; "__metadata__" maps strings to strings.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "src/core/tensor.h"

namespace moe::ckpt {

struct NamedTensor {
  std::string name;
  Shape shape;
  const float* data = nullptr;  // shape_numel(shape) f32 values, row-major
};

// The JSON header (unpadded) for these tensors, in order, with data offsets back to back.
std::string safetensors_header(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata);

// Writes `path` through an OutputFile (a temporary renamed over it, so a reader never sees half a
// file; a device, symlink, FIFO or directory is refused). Returns the file size in bytes.
// Throws InputError for such a path, moe::Error naming the path and the reason for a failed write.
int64_t write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                          const std::map<std::string, std::string>& metadata);

}  // namespace moe::ckpt
