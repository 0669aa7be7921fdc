// Vectorizable float exp/tanh/sigmoid for the CPU elementwise ops. libm's expf/tanhf are scalar
// calls that stop the compiler from vectorizing a loop; these are branch-free (Cephes-style range
// reduction exp(x) = 2^n * p(r), |r| <= ln2/2, degree-6 polynomial), accurate to ~2 ulp, and the
// double versions defer to libm so the f64 gradient checks stay exact.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and chosen at load time.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define MOE_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOE_CPU_CLONES
#endif

namespace moe::ops::cpu {

inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : x;  // ternaries (not fmin/fmax) so that the loop vectorizes
  x = x > 88.7f ? 88.7f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  // Plain a * b + c (contracted to FMA where the clone's ISA has it): std::fma would be a libm
  // call on baseline x86-64.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // x - n ln2, in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r) * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}
inline double fast_exp(double x) { return std::exp(x); }

// tanh(u) = 1 - 2 / (exp(2u) + 1): exact limits at +-inf, no cancellation issue for the
// magnitudes GELU sees (relative error ~1e-7 near 0 is absorbed by the 0.5 x (1 + tanh) form).
inline float fast_tanh(float u) { return 1.0f - 2.0f / (fast_exp(2.0f * u) + 1.0f); }
inline double fast_tanh(double u) { return std::tanh(u); }

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
inline double fast_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// In place: row[0..n) = exp(row - max) / sum; returns log(sum) + max (the logsumexp).
template <class T>
inline T softmax_row(T* row, int64_t n) {
  T mx = row[0];
  for (int64_t j = 1; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    row[j] = fast_exp(row[j] - mx);
    sum += row[j];
  }
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  return mx + std::log(sum);
}
// In place: d[j] = p[j] * (d[j] - sum_k p[k] d[k]) * scale (the softmax backward of one row).
template <class T>
inline void softmax_backward_row(const T* p, T* d, int64_t n, T scale) {
  T dot = 0;
  for (int64_t j = 0; j < n; ++j) dot += p[j] * d[j];
  for (int64_t j = 0; j < n; ++j) d[j] = p[j] * (d[j] - dot) * scale;
}
// y[j] += a * x[j]
template <class T>
inline void axpy_row(const T* x, T* y, int64_t n, T a) {
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}
template <class T>
inline T dot_row(const T* x, const T* y, int64_t n) {
  T s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j] * y[j];
  return s;
}

// Clones per instruction set (fast_math.cpp) and overloads that pick them for float.
float softmax_row_f32(float* row, int64_t n);
void softmax_backward_row_f32(const float* p, float* d, int64_t n, float scale);
void axpy_row_f32(const float* x, float* y, int64_t n, float a);
float dot_row_f32(const float* x, const float* y, int64_t n);
inline void softmax_backward_row_any(const float* p, float* d, int64_t n, float s) { softmax_backward_row_f32(p, d, n, s); }
inline void softmax_backward_row_any(const double* p, double* d, int64_t n, double s) { softmax_backward_row(p, d, n, s); }
inline void axpy_row_any(const float* x, float* y, int64_t n, float a) { axpy_row_f32(x, y, n, a); }
inline void axpy_row_any(const double* x, double* y, int64_t n, double a) { axpy_row(x, y, n, a); }
inline float dot_row_any(const float* x, const float* y, int64_t n) { return dot_row_f32(x, y, n); }
inline double dot_row_any(const double* x, const double* y, int64_t n) { return dot_row(x, y, n); }
inline float softmax_row_any(float* row, int64_t n) { return softmax_row_f32(row, n); }
inline double softmax_row_any(double* row, int64_t n) { return softmax_row(row, n); }

}  // namespace moe::ops::cpu
