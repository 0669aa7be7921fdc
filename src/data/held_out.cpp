// Evenly spread held-out windows, and the bounds on how many an evaluation may read.
#include "src/data/held_out.h"

#include <limits>

#include "src/core/error.h"

namespace moe::data {
namespace {

// The `count` chosen windows of a held-out split, as sequences 0 .. count - 1.
class SpreadWindows final : public TokenSource {
 public:
  SpreadWindows(std::unique_ptr<TokenSource> split, int64_t count)
      : split_(std::move(split)), count_(count), W_(*split_->windows()) {}
  void sequence(int64_t seq, int64_t T, int32_t* out) const override {
    MOE_CHECK(seq >= 0 && seq < count_, "held-out sequence ", seq, " of ", count_);
    split_->sequence(spread_window(seq, count_, W_), T, out);
  }
  std::string describe() const override {
    return split_->describe() + "; " + std::to_string(count_) + " of them, evenly spread";
  }
  std::optional<int64_t> windows() const override { return count_; }

 private:
  std::unique_ptr<TokenSource> split_;
  int64_t count_, W_;
};

}  // namespace

int64_t spread_window(int64_t i, int64_t count, int64_t W) {
  // In 128 bits: (2 i + 1) W overflows int64 for splits of more than ~2e9 windows.
  using U = unsigned __int128;
  return int64_t(((U(i) * 2 + 1) * U(W)) / (U(count) * 2));
}

std::unique_ptr<TokenSource> make_eval_source(const config::DataConfig& d, int64_t vocab,
                                              int64_t seq_len, int64_t batches, int64_t batch,
                                              const std::string& key) {
  std::unique_ptr<TokenSource> split = make_source(d, vocab, seq_len, "val");
  const std::optional<int64_t> W = split->windows();
  const int64_t limit = W ? *W : kMaxSyntheticEvalSequences;
  const bool over = batches > std::numeric_limits<int64_t>::max() / batch || batches * batch > limit;
  if (over) {
    const std::string asked = key + " = " + std::to_string(batches) + " x train.batch = " + std::to_string(batch);
    if (W)
      throw InputError(asked + " held-out sequences, but " + split->describe() +
                           ": windows would be evaluated twice; use " + key + " <= " + std::to_string(limit / batch) +
                           (limit < batch ? " (with train.batch <= " + std::to_string(limit) + ")" : ""),
                       true);
    throw InputError(asked + " held-out sequences, above the " + std::to_string(limit) +
                         " an evaluation may read of the synthetic language's held-out stream; use " + key +
                         " <= " + std::to_string(limit / batch),
                     true);
  }
  if (!W) return split;  // independent draws: the stream's first sequences are as good as any
  return std::make_unique<SpreadWindows>(std::move(split), batches * batch);
}

}  // namespace moe::data
