// Token sources backed by files: llm.c shards (.bin: 256 int32 header, magic 20240520,
// version 1, token count; then uint16 tokens), flat token files without a header (data.kind =
// "bin": little-endian uint16 or uint32, nanoGPT's and the MSSP paper's train.bin / val.bin) and
// raw text read as bytes. Files are memory-mapped and checked completely when opened (every rank
// opens them, so a bad file stops every rank with the same message). Training windows of T + 1
// tokens are visited in a seeded order per epoch.
#pragma once
#include <string>
#include <vector>

#include "src/data/source.h"

namespace moe::data {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;

// A read-only mapping, unmapped when destroyed (also when a later check throws).
struct MappedFile {
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile();
  std::string path;
  const uint8_t* base = nullptr;  // token bytes (after any header)
  size_t map_bytes = 0;
  void* map = nullptr;
  int64_t tokens = 0;
  int width = 1;  // bytes per token (little-endian, as every supported host stores them)
  int64_t token(int64_t i) const {
    if (width == 4) return reinterpret_cast<const uint32_t*>(base)[i];
    return width == 2 ? reinterpret_cast<const uint16_t*>(base)[i] : base[i];
  }
};

// Which windows a source visits. The last `val_fraction` of the windows in file order (at least
// one when > 0) are held out: a training source skips them, a held-out source (held_out) visits
// only them. A training source shuffles its windows per epoch; a held-out source reads them in
// file order, so its batches are the same whatever the seed.
struct WindowSplit {
  double val_fraction = 0;
  bool held_out = false;
};

class FileTokens final : public TokenSource {
 public:
  // kind = "llmc", "text" or "bin" (token_bytes 2 or 4); pattern: a path or a glob. Throws
  // InputError naming the file.
  FileTokens(const std::string& kind, const std::string& pattern, int64_t vocab, int64_t seq_len,
             uint64_t seed, WindowSplit split = {}, int token_bytes = 2);
  void sequence(int64_t seq, int64_t T, int32_t* out) const override;
  std::string describe() const override;
  std::optional<int64_t> windows() const override { return windows_; }
  int64_t total_tokens() const;

 private:
  std::string kind_;
  std::vector<MappedFile> files_;
  std::vector<int64_t> window_start_;  // prefix sums of windows per file
  int64_t windows_ = 0, T_;            // windows_: those this source visits, from first_
  int64_t first_ = 0;
  bool ordered_ = false;
  uint64_t seed_;
};

// Writes an llm.c shard (used by tests and tools).
void write_llmc_shard(const std::string& path, const std::vector<uint16_t>& tokens);

// Refuses (InputError naming data.val_path, data.path and the file) held-out files that are
// also training files: the same path, or the same file through another name, a glob or a link.
void check_held_out_apart(const config::DataConfig& d);

}  // namespace moe::data
