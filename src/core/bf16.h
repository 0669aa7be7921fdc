// bf16 on the host: the CPU backend stores bf16 tensors (computing in f32), so these two
// conversions are the CPU side of mixed precision. Rounding is to nearest, ties to even, as
// CUDA's __float2bfloat16; NaN stays a quiet NaN of the same sign.
#pragma once
#include <cstdint>
#include <cstring>

namespace moe {

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))  // NaN: keep it a NaN
    return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even on the 16 dropped bits
  return uint16_t(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace moe
