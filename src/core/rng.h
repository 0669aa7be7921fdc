// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011), identical on CPU and GPU.
// A parameter's init is normal(key = (seed, parameter name), counter = (element, global expert)),
// so its values never depend on how many ranks hold it or which device computes it.
#pragma once
#include <cmath>
#include <cstdint>
#include <string_view>

#if defined(__CUDACC__)
#define MOE_HD __host__ __device__ __forceinline__
#else
#define MOE_HD inline
#endif

namespace moe::rng {

struct Key {
  uint32_t k0, k1;
};
struct Counter {
  uint32_t c0, c1, c2, c3;
};
struct Block {
  uint32_t v[4];
};

MOE_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 with the published constants.
MOE_HD Block philox(Counter c, Key k) {
  uint32_t x0 = c.c0, x1 = c.c1, x2 = c.c2, x3 = c.c3, k0 = k.k0, k1 = k.k1;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, x0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, x2, &hi1);
    uint32_t n0 = hi1 ^ x1 ^ k0, n2 = hi0 ^ x3 ^ k1;
    x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Block{{x0, x1, x2, x3}};
}

// Uniform in (0, 1]: 24 bits, never 0 so that log() in Box-Muller is finite.
MOE_HD float uniform01(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
// Uniform in [0, 1) with 53 bits from two words (host-side sampling of data).
MOE_HD double uniform_double(uint32_t a, uint32_t b) {
  uint64_t m = (static_cast<uint64_t>(a) << 21) ^ (b >> 11);
  return static_cast<double>(m & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal for element `index` of stream (key, stream): Box-Muller on one Philox block,
// two normals per block, element i takes half i % 2 of block i / 2. Computed in double so the
// CPU and the GPU round identically before the final cast to float.
MOE_HD float normal(Key key, uint64_t index, uint32_t stream) {
  uint64_t blk = index >> 1;
  Block b = philox(Counter{static_cast<uint32_t>(blk), static_cast<uint32_t>(blk >> 32), stream, 0x6E6F726Du}, key);
  double u1 = (static_cast<double>(b.v[0] >> 8) + 1.0) * (1.0 / 16777216.0);
  double u2 = static_cast<double>(b.v[1] >> 8) * (1.0 / 16777216.0);
  double r = sqrt(-2.0 * log(u1));
  double th = 6.283185307179586 * u2;
  return static_cast<float>((index & 1) ? r * sin(th) : r * cos(th));
}

// 64-bit mixing (splitmix64 finaliser): seeds and names to keys.
MOE_HD uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a of a name (host only).
inline uint64_t hash_name(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

inline Key make_key(uint64_t seed, std::string_view name) {
  uint64_t h = mix64(seed ^ mix64(hash_name(name)));
  return Key{static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32)};
}

// A small sequential generator on top of Philox for host-side sampling (data, tests):
// every draw advances a counter, so a stream is fully described by (key, position).
class Stream {
 public:
  Stream(Key key, uint64_t stream) : key_(key), stream_(stream) {}
  uint32_t next_u32() {
    if (used_ == 4) {
      block_ = philox(Counter{static_cast<uint32_t>(pos_), static_cast<uint32_t>(pos_ >> 32),
                              static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)},
                      key_);
      ++pos_;
      used_ = 0;
    }
    return block_.v[used_++];
  }
  double next_double() {
    uint32_t a = next_u32(), b = next_u32();
    return uniform_double(a, b);
  }
  // Uniform integer in [0, n).
  uint64_t next_below(uint64_t n) { return static_cast<uint64_t>(next_double() * static_cast<double>(n)) % n; }

 private:
  Key key_;
  uint64_t stream_;
  uint64_t pos_ = 0;
  Block block_{};
  int used_ = 4;
};

}  // namespace moe::rng
