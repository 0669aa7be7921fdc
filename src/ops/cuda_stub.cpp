// Stand-ins for the CUDA factories when the build has no CUDA backend.
#ifndef MOE_HAVE_CUDA
#include "src/ops/backend.h"

namespace moe::ops {

std::unique_ptr<Backend> make_cuda_backend(int) {
  throw Error("this build has no CUDA backend (nvcc or NCCL was not found at configure time)");
}
int cuda_device_count() { return 0; }

}  // namespace moe::ops
#endif
