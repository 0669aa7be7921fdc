// The held-out sequences an evaluation reads (train.eval_batches during training, moe eval
// --batches): `count` = batches x train.batch sequences, spread evenly over the whole held-out
// split, so that the estimate does not depend on which files happen to open the split. The
// choice depends only on the split's size and `count`, never on the seed, the scale, the EP size
// or the micro-batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "src/config/config.h"
#include "src/data/source.h"

namespace moe::data {

// The synthetic language's held-out stream is endless: an evaluation reads at most this many
// of its sequences (so that a mistyped count is an error, not a run that never reports).
constexpr int64_t kMaxSyntheticEvalSequences = int64_t(1) << 20;

// Held-out sequence i of `count` (0 <= i < count) is window floor((i + 1/2) W / count) of the W
// windows of the split, in file order: the split cut into `count` equal stretches, and the
// middle window of each. count <= W (all of them, in order, when count = W).
int64_t spread_window(int64_t i, int64_t count, int64_t W);

// The held-out source of `d` (data::make_source split "val") seen as its `batches` x `batch`
// evaluation sequences. More than the split holds (a window would be read twice), or more than
// kMaxSyntheticEvalSequences of the synthetic stream, is an InputError naming `key` (the config
// key or option that asked, e.g. "train.eval_batches") and the largest count allowed.
std::unique_ptr<TokenSource> make_eval_source(const config::DataConfig& d, int64_t vocab,
                                              int64_t seq_len, int64_t batches, int64_t batch,
                                              const std::string& key);

}  // namespace moe::data
