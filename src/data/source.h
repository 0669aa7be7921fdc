// Token sources. Every source maps a global sequence number (0, 1, 2, ... in training order) to
// T + 1 tokens, so the batch at step s is sequences [s*B, (s+1)*B) whatever the number of ranks,
// and rank r reads its own slice of it.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace moe::data {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Writes T + 1 tokens of sequence `seq` into out.
  virtual void sequence(int64_t seq, int64_t T, int32_t* out) const = 0;
  virtual std::string describe() const = 0;
  // Best achievable loss (nats per token) where the source knows it.
  virtual std::optional<double> entropy() const { return std::nullopt; }
  // Distinct sequences (windows) before the order repeats with a new permutation: sequence s
  // is in epoch s / windows. None for an endless stream (the synthetic language).
  virtual std::optional<int64_t> windows() const { return std::nullopt; }
};

// The data epoch (0 = first pass) of the last sequence of step `step` (1-based) at global batch
// B: > 0 means windows are being reused.
inline int64_t epoch_at_step(const TokenSource& src, int64_t step, int64_t B) {
  const auto w = src.windows();
  return w && *w > 0 ? (step * B - 1) / *w : 0;
}

// split = "train" or "val": the synthetic language's disjoint held-out stream; for files, the
// held-out windows of data.val_fraction or the files of data.val_path, read in order (without a
// held-out split, every window of the training files, in order). Evaluations read a spread of
// them: src/data/held_out.h. Held-out files that are also training files are refused.
std::unique_ptr<TokenSource> make_source(const config::DataConfig& data, int64_t vocab,
                                         int64_t seq_len, const std::string& split = "train");
// Whether the data has a held-out split (the synthetic language always has).
inline bool has_held_out(const config::DataConfig& d) {
  return d.kind == "synthetic" || d.val_fraction > 0 || !d.val_path.empty();
}

// One rank's slice of the global batch at a step: inputs and next-token targets (B_local * T).
struct LocalBatch {
  std::vector<int32_t> inputs, targets;
};
// With `micro` > 0, micro-step `index` of that slice: its sequences [index * micro, (index + 1) *
// micro), so that the micro-steps of a step read exactly the step's sequences.
void load_batch(const TokenSource& src, int64_t step, int64_t global_batch, int64_t T, int rank,
                int world, LocalBatch& out, int64_t micro = 0, int64_t index = 0);

// A bijection of [0, n) from a seed (Feistel network with cycle walking): window order per
// epoch without storing a permutation.
class Permutation {
 public:
  Permutation(uint64_t n, uint64_t seed);
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t n_, half_bits_, mask_;
  uint64_t keys_[4];
};

}  // namespace moe::data
