// cuDNN is not linked: cudnn-frontend is compiled in its dynamic-loading mode
// (NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING, cmake/gpu_headers.cmake), which resolves every cuDNN
// call through dlsym on a handle the program opens. So the binaries start, and fused attention
// runs on our own kernels, on machines without cuDNN (CI, a GPU box without the wheel).
#pragma once
#include <string>

namespace moe::ops::gpu {

// Opens cuDNN 9 once per process and hands it to cudnn-frontend; true when it is usable (a
// cuDNN 9 built for this CUDA major). Otherwise false, with the reason in *why. Needs no GPU.
bool load_cudnn(std::string* why);

}  // namespace moe::ops::gpu
