// Deterministic reductions: a whole-tensor sum in double (sum_squares, the cross-entropy loss)
// and column sums of a row-major matrix (router statistics, RMSNorm's gain gradient). No
// atomics: the launch shapes depend only on the sizes, so the summation order, and with it the
// result, is the same on every run.
#pragma once
#include "src/ops/cuda/common.cuh"

namespace moe::ops::gpu {

constexpr int kSumThreads = 256;
constexpr int kSumMaxBlocks = 1024;

// First pass: partial[b] = sum over the elements block b visits of x (or x^2), in double.
template <class T, bool kSquare>
__global__ void sum_partial_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const double v = to_d(x[i]);
    acc += kSquare ? v * v : v;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Second pass, one block: *out = sum of the partials.
template <int kThreads>
__global__ void sum_final_kernel(const double* partial, int blocks, double* out) {
  __shared__ double sh[32];
  double acc = 0;
  for (int i = threadIdx.x; i < blocks; i += kThreads) acc += partial[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

// *out (device) = sum over x[0..n) of x (or x^2), accumulated in double.
template <class T, bool kSquare>
void launch_sum(const T* x, int64_t n, double* out, cudaStream_t s) {
  if (n == 0) {
    MOE_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), s));
    return;
  }
  const int blocks =
      int(std::min<int64_t>((n + kSumThreads * 8 - 1) / (kSumThreads * 8), kSumMaxBlocks));
  Tensor partial = scratch(blocks, DType::F64);
  sum_partial_kernel<T, kSquare><<<blocks, kSumThreads, 0, s>>>(x, n, dptr<double>(partial));
  MOE_CUDA_LAUNCH_CHECK("sum_partial_kernel");
  sum_final_kernel<kSumThreads><<<1, kSumThreads, 0, s>>>(dptr<double>(partial), blocks, out);
  MOE_CUDA_LAUNCH_CHECK("sum_final_kernel");
}

constexpr int kColRows = 128;  // rows per chunk of the column sums

// partial[c, j] = sum over the rows r of chunk c of f(r, j), in float. Block (32, 8): threadIdx.x
// picks the column, threadIdx.y strides the chunk's rows; the 8 partial sums are then added in
// order. Grid (chunks, column tiles of 32).
template <class F>
__global__ void colsum_partial_kernel(F f, int64_t rows, int64_t cols, float* partial) {
  __shared__ float sh[8][33];
  const int64_t j = int64_t(blockIdx.y) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.x) * kColRows;
  const int64_t r1 = r0 + kColRows < rows ? r0 + kColRows : rows;
  float acc = 0;
  if (j < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) acc += f(r, j);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float s = 0;
    for (int y = 0; y < 8; ++y) s += sh[y][threadIdx.x];
    partial[int64_t(blockIdx.x) * cols + j] = s;
  }
}

// out[j] = (out[j] +) sum over chunks c, in order, of partial[c, j].
template <class T>
__global__ void colsum_final_kernel(const float* partial, int64_t chunks, int64_t cols, T* out,
                                    bool accumulate) {
  for (int64_t j = global_thread(); j < cols; j += grid_threads()) {
    float s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[c * cols + j];
    out[j] = from_f<T>(accumulate ? to_f(out[j]) + s : s);
  }
}

// out[j] (+)= sum over r < rows of f(r, j), for j < cols. f is a device functor (r, j) -> float.
template <class F, class T>
void launch_colsum(F f, int64_t rows, int64_t cols, T* out, bool accumulate, cudaStream_t s) {
  if (cols == 0) return;
  const int64_t chunks = (rows + kColRows - 1) / kColRows;
  const int64_t tiles = (cols + 31) / 32;
  MOE_CHECK(tiles <= 65535, "column sum over ", cols, " columns");
  Tensor partial = scratch(std::max<int64_t>(chunks * cols, 1), DType::F32);
  if (chunks > 0) {
    colsum_partial_kernel<<<dim3(unsigned(chunks), unsigned(tiles)), dim3(32, 8), 0, s>>>(
        f, rows, cols, dptr<float>(partial));
    MOE_CUDA_LAUNCH_CHECK("colsum_partial_kernel");
  }
  colsum_final_kernel<T>
      <<<grid_for(cols, 256), 256, 0, s>>>(dptr<float>(partial), chunks, cols, out, accumulate);
  MOE_CUDA_LAUNCH_CHECK("colsum_final_kernel");
}

}  // namespace moe::ops::gpu
