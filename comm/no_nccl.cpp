// Stand-in for the NCCL communicator's factory in builds without CUDA (the name avoids the
// "nccl_" pattern that CMake compiles only in CUDA builds).
#ifndef MOE_HAVE_CUDA
#include "comm/nccl.h"
#include "src/core/error.h"

namespace moe::comm {

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, ops::Backend&, NcclOptions) {
  throw InputError(
      "parallel.backend = \"nccl\" needs a CUDA build (nvcc and NCCL were not found at configure "
      "time)",
      true);
}

}  // namespace moe::comm
#endif
