// The built-in synthetic language: a sparse Markov chain over the vocabulary (each token has
// `branching` successors with Zipf weights) mixed with copies: with probability copy_prob a
// token repeats the one copy_lag positions back (which takes attention to predict). Generated
// from a seed, so the main job needs no download; the true conditional probabilities are known,
// so the best achievable loss is computed, not guessed.
#pragma once
#include <vector>

#include "src/data/source.h"

namespace moe::data {

class SyntheticLanguage final : public TokenSource {
 public:
  SyntheticLanguage(int64_t vocab, int64_t branching, double zipf, double copy_prob,
                    int64_t copy_lag, uint64_t seed, uint64_t stream_offset, int64_t seq_len);
  void sequence(int64_t seq, int64_t T, int32_t* out) const override;
  std::string describe() const override;
  // Mean over targets (positions 1..T) of -log q(x_t | x_<t), estimated on 4096 held-out
  // sequences; its standard error is entropy_stderr().
  std::optional<double> entropy() const override;
  double entropy_stderr() const;
  // True conditional probability of token x at position t given the sequence before it.
  double prob(const int32_t* seq, int64_t t, int32_t x) const;

 private:
  void compute_entropy() const;
  int64_t V_, Bf_;
  double copy_, zipf_;
  int64_t lag_, T_;
  uint64_t seed_, offset_;
  std::vector<int32_t> succ_;  // (V, Bf) successor ids
  std::vector<double> cum_;    // (V, Bf) cumulative probabilities
  std::vector<double> p_;      // (V, Bf) probabilities
  mutable double entropy_ = -1, stderr_ = 0;
};

}  // namespace moe::data
