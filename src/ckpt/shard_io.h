// Shard files: a Boost.Serialization binary archive of one Shard, hashed (XXH64) as it streams
// to disk, and read back only after its size and checksum match the manifest.
#pragma once
#include <cstdint>
#include <string>

#include "src/ckpt/record.h"

namespace moe::ckpt {

struct WrittenShard {
  int64_t bytes = 0;
  uint64_t checksum = 0;
};

// Writes and fsyncs `path`; throws moe::Error naming it on any failure (e.g. disk full).
WrittenShard write_shard(const std::string& path, const Shard& shard);

// Reads `path`, checks it against the manifest's size and checksum, and parses it. Throws
// InputError naming the file when it is missing, truncated, corrupt or unparsable.
Shard read_shard(const std::string& path, int64_t bytes, uint64_t checksum);

}  // namespace moe::ckpt
