// Device helpers shared by the CUDA kernels: bf16 <-> float conversion, reductions in a fixed
// order (deterministic run to run for a given launch shape), and error recording.
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "src/ops/cuda/cuda_backend.h"
#include "src/ops/cuda/cuda_util.h"

namespace moe::ops::gpu {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

__device__ __forceinline__ double to_d(double x) { return x; }
__device__ __forceinline__ double to_d(float x) { return x; }
__device__ __forceinline__ double to_d(bf16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// Butterfly reductions: every lane ends with the same value (a + b == b + a exactly), and the
// association order is fixed, so the result does not change from run to run.
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a 1-D block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. `shared` holds at least 32 values. Safe to call repeatedly in a row.
template <class A>
__device__ A block_sum(A v, A* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // a previous call's readers are done with `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  A r = lane < warps ? shared[lane] : A(0);
  return warp_sum(r);
}

__device__ inline float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float r = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(r);
}

// Records the first error since the last check (later ones are dropped).
__device__ __forceinline__ void record_error(DeviceStatus* st, int code, int value) {
  if (atomicCAS(&st->error, 0, code) == 0) st->error_value = value;
}

// Grid-stride loop index helpers (64-bit: tensors may exceed 2^31 elements).
__device__ __forceinline__ int64_t global_thread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace moe::ops::gpu
