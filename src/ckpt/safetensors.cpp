// The safetensors writer: header from metrics::Json (its string escaping is JSON's), F32 only;
// the file through OutputFile (src/core/output_file.h).
#include "src/ckpt/safetensors.h"

#include "src/core/output_file.h"
#include "src/metrics/json.h"

namespace moe::ckpt {

std::string safetensors_header(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  metrics::Json j;
  j.begin_object();
  if (!metadata.empty()) {
    j.key("__metadata__").begin_object();
    for (const auto& [k, v] : metadata) j.kv(k, v);
    j.end_object();
  }
  int64_t at = 0;
  for (const NamedTensor& t : tensors) {
    const int64_t bytes = shape_numel(t.shape) * int64_t(sizeof(float));
    j.key(t.name).begin_object().kv("dtype", "F32");
    j.key("shape").begin_array();
    for (int64_t d : t.shape) j.value(d);
    j.end_array();
    j.key("data_offsets").begin_array().value(at).value(at + bytes).end_array();
    j.end_object();
    at += bytes;
  }
  j.end_object();
  return j.str();
}

int64_t write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  std::string header = safetensors_header(tensors, metadata);
  header.append((8 - header.size() % 8) % 8, ' ');  // the data then starts 8-byte aligned
  OutputFile f(path);
  unsigned char len[8];
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));  // little-endian
  f.write(len, 8);
  f.write(header);
  for (const NamedTensor& t : tensors) f.write(t.data, size_t(shape_numel(t.shape)) * sizeof(float));
  return f.commit();
}

}  // namespace moe::ckpt
