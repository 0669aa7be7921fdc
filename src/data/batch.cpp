// The global batch order and the window permutation.
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/data/source.h"

namespace moe::data {

void load_batch(const TokenSource& src, int64_t step, int64_t global_batch, int64_t T, int rank,
                int world, LocalBatch& out, int64_t micro, int64_t index) {
  MOE_CHECK(global_batch % world == 0, "batch ", global_batch, " over ", world, " ranks");
  const int64_t local = global_batch / world, B = micro > 0 ? micro : local;
  MOE_CHECK(local % B == 0 && index >= 0 && index < local / B, "micro-batch ", index, " of ", B,
            " sequences in a local batch of ", local);
  out.inputs.resize(B * T);
  out.targets.resize(B * T);
  std::vector<int32_t> seq(T + 1);
  const int64_t first = step * global_batch + rank * local + index * B;
  for (int64_t b = 0; b < B; ++b) {
    src.sequence(first + b, T, seq.data());
    std::copy(seq.begin(), seq.end() - 1, out.inputs.begin() + b * T);
    std::copy(seq.begin() + 1, seq.end(), out.targets.begin() + b * T);
  }
}

Permutation::Permutation(uint64_t n, uint64_t seed) : n_(n) {
  uint64_t bits = 2;
  while ((1ull << bits) < n) bits += 2;  // an even number of bits, split in two halves
  half_bits_ = bits / 2;
  mask_ = (1ull << half_bits_) - 1;
  for (int i = 0; i < 4; ++i) keys_[i] = rng::mix64(seed * 4 + i + 1);
}

uint64_t Permutation::operator()(uint64_t i) const {
  MOE_CHECK(i < n_, "permutation index ", i, " of ", n_);
  uint64_t x = i;
  do {  // cycle walking: re-encrypt until the value falls inside [0, n)
    uint64_t l = x >> half_bits_, r = x & mask_;
    for (int k = 0; k < 4; ++k) {
      uint64_t f = rng::mix64(r ^ keys_[k]) & mask_;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half_bits_) | r;
  } while (x >= n_);
  return x;
}

}  // namespace moe::data
