// The CUDA backend's life cycle: device, stream, cuBLAS handle, the tensor memory hooks, the
// status word that kernels report errors through, and the factories of backend.h.
#include "src/ops/cuda/cuda_backend.h"

#include <cstring>
#include <string>

#include "src/ops/cuda/cuda_util.h"

namespace moe::ops {
namespace gpu {

void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
  int dev = -1;
  cudaGetDevice(&dev);
  throw Error(detail::cat(file, ":", line, ": CUDA call `", call, "` failed on device ", dev, ": ",
                          cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

void throw_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  int dev = -1;
  cudaGetDevice(&dev);
  throw Error(detail::cat(file, ":", line, ": cuBLAS call `", call, "` failed on device ", dev,
                          ": ", cublasGetStatusName(s), ": ", cublasGetStatusString(s)));
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda(e, kernel, file, line);
}

namespace {

// The tensor hooks take no context, so the stream they order allocations and copies on lives
// here: the stream of the most recently created backend (0, the legacy stream, when none).
cudaStream_t g_hook_stream = nullptr;
const CudaBackend* g_hook_owner = nullptr;

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes, g_hook_stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(detail::cat("CUDA out of memory (or allocator failure) allocating ", bytes,
                            " bytes: ", cudaGetErrorString(e), "; ", free_b >> 20, " MiB free of ",
                            total_b >> 20, " MiB"));
  }
  return p;
}

// Called from Storage's destructor: must not throw. Stream-ordered, so kernels already queued
// that read the memory finish first.
void device_free(void* p) {
  if (cudaFreeAsync(p, g_hook_stream) != cudaSuccess) cudaGetLastError();
}

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  MOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, g_hook_stream));
  // Host memory on either side: the caller reads or frees it right after, so wait.
  if (dst_dev == Device::CPU || src_dev == Device::CPU)
    MOE_CUDA_CHECK(cudaStreamSynchronize(g_hook_stream));
}

void device_memset(void* dst, size_t bytes) {
  MOE_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, g_hook_stream));
}

const char* error_text(int32_t code) {
  switch (code) {
    case kErrTokenId:
      return "token id outside the vocabulary";
    case kErrRow:
      return "row index outside the source rows";
    case kErrSlot:
      return "slot outside the expert rows";
    case kErrTarget:
      return "target outside the vocabulary";
  }
  return "unknown device error";
}

}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  MOE_CUDA_CHECK(cudaSetDevice(device_));
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MOE_CUBLAS_CHECK(cublasCreate(&cublas_));
  MOE_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // fp32 GEMMs stay fp32 (no TF32): CUBLAS_COMPUTE_32F with the default math mode.
  MOE_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  MOE_CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&cc_major_, cudaDevAttrComputeCapabilityMajor, device_));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&cc_minor_, cudaDevAttrComputeCapabilityMinor, device_));
  // Keep freed blocks in the pool instead of returning them to the driver at every sync.
  cudaMemPool_t pool;
  MOE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
  uint64_t threshold = UINT64_MAX;
  MOE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));

  MOE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&status_), sizeof(DeviceStatus)));
  // On stream_, where every kernel that writes the word runs: the legacy stream's cudaMemset is
  // not ordered with a non-blocking stream, so a kernel queued right after could race it.
  MOE_CUDA_CHECK(cudaMemsetAsync(status_, 0, sizeof(DeviceStatus), stream_));
  MOE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_status_), sizeof(DeviceStatus)));
  std::memset(host_status_, 0, sizeof(DeviceStatus));
  for (StagingSlot& sl : staging_)
    MOE_CUDA_CHECK(cudaEventCreateWithFlags(&sl.free, cudaEventDisableTiming));

  g_hook_stream = stream_;
  g_hook_owner = this;
  register_device_allocator(device_alloc, device_free);
  register_device_copy(device_copy);
  register_device_memset(device_memset);
}

CudaBackend::~CudaBackend() {
  // Never throws: errors here have nowhere to go.
  cudaStreamSynchronize(stream_);
  cudnn_.reset();  // its handle works on stream_: before the stream goes
  if (g_hook_owner == this) {  // tensors that outlive the backend free on the legacy stream
    g_hook_stream = nullptr;
    g_hook_owner = nullptr;
  }
  for (StagingSlot& sl : staging_) {
    if (sl.host) cudaFreeHost(sl.host);
    if (sl.free) cudaEventDestroy(sl.free);
  }
  if (host_status_) cudaFreeHost(host_status_);
  if (status_) cudaFree(status_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
  cudaGetLastError();
}

DeviceStatus CudaBackend::fetch_status(const char* op) {
  MOE_CUDA_CHECK(cudaMemcpyAsync(host_status_, status_, sizeof(DeviceStatus),
                                 cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  count_host_sync();
  count_transfer(Device::CPU, Device::CUDA, sizeof(DeviceStatus));
  DeviceStatus st = *host_status_;
  if (st.error != 0) {
    // Clear it, so that the error is reported once and the backend stays usable.
    MOE_CUDA_CHECK(cudaMemsetAsync(&status_->error, 0, 2 * sizeof(int32_t), stream_));
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    throw Error(detail::cat(op, ": ", error_text(st.error), " (index ", st.error_value,
                            ", detected on device ", device_,
                            " by an op queued since the last check)"));
  }
  return st;
}

void CudaBackend::synchronize() { fetch_status("CUDA backend"); }

void CudaBackend::upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  StagingSlot& sl = staging_[staging_next_];
  staging_next_ = (staging_next_ + 1) % kStagingSlots;
  // This slot's previous copy must have run before it is overwritten; with a ring of slots
  // that copy was queued kStagingSlots uploads ago and has normally finished.
  if (cudaEventQuery(sl.free) == cudaErrorNotReady) {  // a real wait: count it
    count_host_sync();
    MOE_CUDA_CHECK(cudaEventSynchronize(sl.free));
  }
  cudaGetLastError();
  if (bytes > sl.bytes) {
    if (sl.host) MOE_CUDA_CHECK(cudaFreeHost(sl.host));
    sl.host = nullptr;
    sl.bytes = std::max<size_t>(bytes, 4096);
    MOE_CUDA_CHECK(cudaMallocHost(&sl.host, sl.bytes));
  }
  std::memcpy(sl.host, src, bytes);
  count_transfer(Device::CUDA, Device::CPU, bytes);
  MOE_CUDA_CHECK(cudaMemcpyAsync(dst, sl.host, bytes, cudaMemcpyHostToDevice, stream_));
  MOE_CUDA_CHECK(cudaEventRecord(sl.free, stream_));
}

}  // namespace gpu

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  const int count = cuda_device_count();
  MOE_CHECK(count > 0, "no usable CUDA device on this machine");
  MOE_CHECK(device_index >= 0 && device_index < count, "CUDA device ", device_index, " requested, ",
            count, " present");
  return std::make_unique<gpu::CudaBackend>(device_index);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for the caller
    return 0;
  }
  return n;
}

}  // namespace moe::ops
