// Synthetic language generation and its exact conditional probabilities.
#include "src/data/synthetic.h"

#include <cmath>
#include <sstream>

#include "src/core/rng.h"

namespace moe::data {

SyntheticLanguage::SyntheticLanguage(int64_t vocab, int64_t branching, double zipf, double copy_prob,
                                     int64_t copy_lag, uint64_t seed, uint64_t stream_offset,
                                     int64_t seq_len)
    : V_(vocab), Bf_(branching), copy_(copy_prob), zipf_(zipf), lag_(copy_lag), T_(seq_len),
      seed_(seed), offset_(stream_offset) {
  succ_.resize(V_ * Bf_);
  cum_.resize(V_ * Bf_);
  p_.resize(V_ * Bf_);
  rng::Key key = rng::make_key(seed, "synthetic-language");
  std::vector<int32_t> pool(V_);
  for (int64_t s = 0; s < V_; ++s) {
    rng::Stream st(key, s);
    for (int64_t i = 0; i < V_; ++i) pool[i] = int32_t(i);
    for (int64_t j = 0; j < Bf_; ++j) {  // partial Fisher-Yates: Bf distinct successors
      int64_t k = j + int64_t(st.next_below(V_ - j));
      std::swap(pool[j], pool[k]);
      succ_[s * Bf_ + j] = pool[j];
    }
    double z = 0;
    for (int64_t j = 0; j < Bf_; ++j) z += std::pow(double(j + 1), -zipf);
    double c = 0;
    for (int64_t j = 0; j < Bf_; ++j) {
      p_[s * Bf_ + j] = std::pow(double(j + 1), -zipf) / z;
      c += p_[s * Bf_ + j];
      cum_[s * Bf_ + j] = c;
    }
    cum_[s * Bf_ + Bf_ - 1] = 1.0;
  }
}

void SyntheticLanguage::sequence(int64_t seq, int64_t T, int32_t* out) const {
  rng::Stream st(rng::make_key(seed_, "synthetic-text"), offset_ + uint64_t(seq));
  out[0] = int32_t(st.next_below(V_));
  for (int64_t t = 1; t <= T; ++t) {
    double u = st.next_double();
    if (t >= lag_ && u < copy_) {
      out[t] = out[t - lag_];
      continue;
    }
    double v = st.next_double();
    const double* c = &cum_[out[t - 1] * Bf_];
    int64_t j = 0;
    while (j + 1 < Bf_ && v >= c[j]) ++j;
    out[t] = succ_[out[t - 1] * Bf_ + j];
  }
}

double SyntheticLanguage::prob(const int32_t* seq, int64_t t, int32_t x) const {
  double markov = 0;
  for (int64_t j = 0; j < Bf_; ++j)
    if (succ_[seq[t - 1] * Bf_ + j] == x) markov = p_[seq[t - 1] * Bf_ + j];
  if (t < lag_) return markov;
  return copy_ * (seq[t - lag_] == x ? 1.0 : 0.0) + (1 - copy_) * markov;
}

void SyntheticLanguage::compute_entropy() const {
  const int64_t S = 4096;
  SyntheticLanguage held(V_, Bf_, zipf_, copy_, lag_, seed_, 1ull << 62, T_);
  std::vector<int32_t> s(T_ + 1);
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < S; ++i) {
    held.sequence(i, T_, s.data());
    double nll = 0;
    for (int64_t t = 1; t <= T_; ++t) nll -= std::log(prob(s.data(), t, s[t]));
    nll /= double(T_);
    sum += nll;
    sum2 += nll * nll;
  }
  entropy_ = sum / S;
  stderr_ = std::sqrt(std::max(0.0, sum2 / S - entropy_ * entropy_) / S);
}

std::optional<double> SyntheticLanguage::entropy() const {
  if (entropy_ < 0) compute_entropy();
  return entropy_;
}

double SyntheticLanguage::entropy_stderr() const {
  if (entropy_ < 0) compute_entropy();
  return stderr_;
}

std::string SyntheticLanguage::describe() const {
  std::ostringstream os;
  os << "synthetic language: V=" << V_ << ", " << Bf_ << " successors (zipf " << zipf_
     << "), copy " << copy_ << " at lag " << lag_;
  return os.str();
}

}  // namespace moe::data
