// Philox4x32-10 known answers (Random123) and the statistics of the normal/uniform/integer draws.
#include "src/core/rng.h"

#include <cmath>
#include <set>
#include <vector>

#include "tests/test_util.h"

namespace moe::test {
namespace {

// Random123's kat_vectors for philox4x32 with 10 rounds: counter, key, expected output.
struct Kat {
  rng::Counter c;
  rng::Key k;
  uint32_t out[4];
};

TEST(Rng, PhiloxKnownAnswers) {
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& kat : kats) {
    rng::Block b = rng::philox(kat.c, kat.k);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(b.v[i], kat.out[i]) << "word " << i << " for counter " << std::hex << kat.c.c0;
  }
}

TEST(Rng, NormalHasUnitMomentsAndGaussianTails) {
  const int64_t n = 100000;
  const rng::Key key = rng::make_key(42, "normal-moments");
  double sum = 0, sum2 = 0, sum4 = 0, pair = 0;
  int64_t beyond = 0;  // |z| > 1.959964: 5% for a standard normal
  for (int64_t i = 0; i < n; ++i) {
    double z = rng::normal(key, i, 3);
    ASSERT_TRUE(std::isfinite(z)) << i;
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
    if (std::abs(z) > 1.959964) ++beyond;
    // Even and odd elements share a Box-Muller block: their cos and sin halves must be
    // uncorrelated.
    if (i & 1) pair += z * rng::normal(key, i - 1, 3);
  }
  // Standard errors for a standard normal: mean 1/sqrt(n), variance sqrt(2/n) (E z^4 = 3),
  // tail fraction sqrt(p(1-p)/n), pair product 1/sqrt(n/2). Five standard errors: a correct
  // generator fails with probability ~1e-6, a biased one (say variance 1.05) fails always.
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 5 / std::sqrt(double(n)));
  EXPECT_NEAR(var, 1.0, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(sum4 / n, 3.0, 5 * std::sqrt(96.0 / n));  // Var z^4 = 105 - 9
  EXPECT_NEAR(double(beyond) / n, 0.05, 5 * std::sqrt(0.05 * 0.95 / n));
  EXPECT_NEAR(pair / (n / 2), 0.0, 5 / std::sqrt(n / 2.0));
}

TEST(Rng, NormalIsAPureFunctionOfKeyIndexStream) {
  const rng::Key key = rng::make_key(1, "w");
  // Counter-based: the same element comes out whatever order elements are drawn in.
  EXPECT_EQ(rng::normal(key, 12345, 0), rng::normal(key, 12345, 0));
  EXPECT_NE(rng::normal(key, 12345, 0), rng::normal(key, 12345, 1));  // another expert
  EXPECT_NE(rng::normal(key, 12344, 0), rng::normal(key, 12345, 0));  // the other half
}

TEST(Rng, KeysDependOnSeedAndName) {
  auto same = [](rng::Key a, rng::Key b) { return a.k0 == b.k0 && a.k1 == b.k1; };
  EXPECT_TRUE(same(rng::make_key(7, "blocks.0.attn_qkv"), rng::make_key(7, "blocks.0.attn_qkv")));
  EXPECT_FALSE(same(rng::make_key(7, "blocks.0.attn_qkv"), rng::make_key(7, "blocks.1.attn_qkv")));
  EXPECT_FALSE(same(rng::make_key(7, "embed"), rng::make_key(8, "embed")));
  EXPECT_FALSE(same(rng::make_key(7, "a"), rng::make_key(7, "")));
  // Many parameter names: no two collide (a collision would make two tensors identical).
  std::set<std::pair<uint32_t, uint32_t>> keys;
  for (int i = 0; i < 1000; ++i) {
    rng::Key k = rng::make_key(1234, "blocks." + std::to_string(i) + ".moe.expert_up");
    keys.insert({k.k0, k.k1});
  }
  EXPECT_EQ(keys.size(), 1000u);
}

TEST(Rng, UniformRangesAreAsDocumented) {
  // uniform01 is (0, 1] so that log() is finite; uniform_double is [0, 1).
  EXPECT_GT(rng::uniform01(0), 0.0f);
  EXPECT_LE(rng::uniform01(0xffffffffu), 1.0f);
  EXPECT_EQ(rng::uniform_double(0, 0), 0.0);
  EXPECT_LT(rng::uniform_double(0xffffffffu, 0xffffffffu), 1.0);
}

TEST(Rng, StreamNextBelowIsInRangeAndUniform) {
  rng::Stream st(rng::make_key(9, "stream"), 5);
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 1000ull, (1ull << 32) + 17, (1ull << 52) + 3})
    for (int i = 0; i < 2000; ++i) ASSERT_LT(st.next_below(n), n) << "n = " << n;
  // Counts over 7 buckets: each within 5 binomial standard errors of n/7.
  const int64_t draws = 70000, n = 7;
  std::vector<int64_t> count(n, 0);
  for (int64_t i = 0; i < draws; ++i) ++count[st.next_below(n)];
  const double p = 1.0 / n, se = std::sqrt(draws * p * (1 - p));
  for (int64_t b = 0; b < n; ++b) EXPECT_NEAR(double(count[b]), draws * p, 5 * se) << b;
}

TEST(Rng, StreamsAreReproducibleAndDistinct) {
  const rng::Key key = rng::make_key(3, "s");
  rng::Stream a(key, 0), b(key, 0), c(key, 1);
  int differ = 0;
  for (int i = 0; i < 64; ++i) {
    uint32_t x = a.next_u32(), y = b.next_u32(), z = c.next_u32();
    EXPECT_EQ(x, y);
    differ += x != z;
  }
  EXPECT_GT(differ, 60);
  // The high bits of the stream id count too: the synthetic language's validation and
  // held-out streams start at 2^61 and 2^62, and must not repeat the training stream 0.
  rng::Stream t(key, 0), v(key, 1ull << 61), h(key, 1ull << 62);
  int same_tv = 0, same_th = 0;
  for (int i = 0; i < 64; ++i) {
    uint32_t x = t.next_u32(), y = v.next_u32(), z = h.next_u32();
    same_tv += x == y;
    same_th += x == z;
  }
  EXPECT_LT(same_tv, 4);
  EXPECT_LT(same_th, 4);
}

}  // namespace
}  // namespace moe::test
