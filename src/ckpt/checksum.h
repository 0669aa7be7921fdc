// The 64-bit checksum of checkpoint shards: XXH64 (seed 0), so that a shard can be verified with
// any xxhash tool (`xxhsum -H64 shard_00000.bin`). Streaming, because shards are hashed as they
// are written rather than buffered whole in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moe::ckpt {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t len);
  uint64_t digest() const;  // of everything fed so far (the state is unchanged)

 private:
  uint64_t v_[4];
  uint64_t seed_, total_ = 0;
  unsigned char buf_[32];
  size_t buffered_ = 0;
};

uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0);
// 16 lowercase hex digits, the form the manifest stores (TOML integers are signed).
std::string hex64(uint64_t v);
// Parses hex64's output; false on anything else.
bool parse_hex64(const std::string& s, uint64_t& out);

}  // namespace moe::ckpt
