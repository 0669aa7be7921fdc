// Loading cuDNN at run time for cudnn-frontend's dynamic-loading mode (cudnn_library.h).
#include "src/ops/cuda/cudnn/cudnn_library.h"

#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include <cudnn_frontend_shim.h>

#include "src/core/error.h"

namespace cudnn_frontend {
// cudnn_frontend_shim.h declares this and resolves every cuDNN function with
// dlsym(cudnn_dlhandle, name), caching each on its first call; the program defines it and sets
// it before any cuDNN call (load_cudnn below), and never changes it afterwards.
void* cudnn_dlhandle = nullptr;
}  // namespace cudnn_frontend

namespace moe::ops::gpu {
namespace {

// cuDNN 9 ships libcudnn.so.9, a small library that exports the whole API (cudnnCreate,
// cudnnSetStream, cudnnGetVersion, the cudnnBackend* graph calls, ...) and loads the
// sub-libraries that implement it (libcudnn_graph.so.9, the engines) from its own folder on
// first use; this is what NVIDIA's samples and the pip wheel (nvidia-cudnn-cu13,
// nvidia/cudnn/lib) provide. libcudnn_graph.so.9 exports the same graph-API entry points
// itself (checked with nm on 9.28), so an install that has it without the shim also works.
constexpr const char* kLibraries[] = {"libcudnn.so.9", "libcudnn_graph.so.9"};

// cudnn-frontend also dlopens a CUDA runtime for a few calls of its own (cudaGetDevice,
// cudaDeviceGetAttribute, ...), trying libcudart.so.12 before .13; where both are installed it
// would take the other major's. CUDNN_FRONTEND_CUDART_LIB_NAME names the one to use: the
// runtime this program is linked with (unless the user set it).
void pin_frontend_cudart() {
  if (std::getenv("CUDNN_FRONTEND_CUDART_LIB_NAME")) return;
  // The definition the process resolved (not a PLT stub in the executable), and its file.
  void* sym = dlsym(RTLD_DEFAULT, "cudaRuntimeGetVersion");
  Dl_info info{};
  if (sym && dladdr(sym, &info) && info.dli_fname && std::strstr(info.dli_fname, "libcudart"))
    setenv("CUDNN_FRONTEND_CUDART_LIB_NAME", info.dli_fname, 0);
}

struct Loaded {
  bool ok = false;
  std::string why;
};

Loaded open_cudnn() {
  Loaded r;
  void* h = nullptr;
  std::string errors;
  for (const char* lib : kLibraries) {
    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
    const char* e = dlerror();
    errors += detail::cat(errors.empty() ? "" : "; ", e ? e : lib);
  }
  if (!h) {
    r.why = errors;
    return r;
  }
  using VersionFn = size_t (*)();
  auto version = reinterpret_cast<VersionFn>(dlsym(h, "cudnnGetVersion"));
  auto cudart = reinterpret_cast<VersionFn>(dlsym(h, "cudnnGetCudartVersion"));
  if (!version || !cudart) {
    r.why = "the cuDNN library found lacks cudnnGetVersion / cudnnGetCudartVersion";
    dlclose(h);
    return r;
  }
  int ours = 0;
  if (cudaRuntimeGetVersion(&ours) != cudaSuccess) cudaGetLastError();
  const size_t v = version(), built_for = cudart();
  if (v < 90000) {
    r.why = detail::cat("cuDNN ", v, " found, version 9 needed");
  } else if (ours != 0 && size_t(ours) / 1000 != built_for / 1000) {
    r.why = detail::cat("cuDNN ", v, " is built for CUDA ", built_for / 1000,
                        ", this program for CUDA ", ours / 1000);
  }
  if (!r.why.empty()) {
    dlclose(h);
    return r;
  }
  pin_frontend_cudart();
  cudnn_frontend::cudnn_dlhandle = h;  // kept open for the life of the process
  r.ok = true;
  return r;
}

}  // namespace

bool load_cudnn(std::string* why) {
  static const Loaded loaded = open_cudnn();
  if (!loaded.ok && why) *why = loaded.why;
  return loaded.ok;
}

}  // namespace moe::ops::gpu
