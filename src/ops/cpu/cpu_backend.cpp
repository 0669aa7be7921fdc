// Factory for the CPU backend; BLAS runs single-threaded (ranks, not threads, share the cores).
#include "src/ops/cpu/cpu_backend.h"

extern "C" void openblas_set_num_threads(int);

namespace moe::ops {

std::unique_ptr<Backend> make_cpu_backend() {
  openblas_set_num_threads(1);
  return std::make_unique<cpu::CpuBackend>();
}

}  // namespace moe::ops
