// Error checks for CUDA runtime and cuBLAS calls: a failure throws moe::Error carrying the call,
// file:line, the device and the library's own error name and text.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "src/core/error.h"

namespace moe::ops::gpu {

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* call, const char* file, int line);
// Throws if the last kernel launch failed (bad configuration, missing kernel image); clears it.
void check_launch(const char* kernel, const char* file, int line);

}  // namespace moe::ops::gpu

#define MOE_CUDA_CHECK(call)                                                                       \
  do {                                                                                             \
    cudaError_t moe_err_ = (call);                                                                 \
    if (moe_err_ != cudaSuccess) ::moe::ops::gpu::throw_cuda(moe_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define MOE_CUBLAS_CHECK(call)                                           \
  do {                                                                   \
    cublasStatus_t moe_st_ = (call);                                     \
    if (moe_st_ != CUBLAS_STATUS_SUCCESS)                                \
      ::moe::ops::gpu::throw_cublas(moe_st_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors surface here, faults at the next synchronization.
#define MOE_CUDA_LAUNCH_CHECK(kernel) ::moe::ops::gpu::check_launch(kernel, __FILE__, __LINE__)
