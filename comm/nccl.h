// Selecting the NCCL communicator (comm/nccl_communicator.h) without seeing its class: this
// header needs neither NCCL's nor CUDA's and is included by launch code that builds without
// CUDA, where make_nccl_communicator throws a clear error (comm/no_nccl.cpp).
#pragma once
#include <mpi.h>

#include <memory>

#include "comm/communicator.h"

namespace moe::ops {
class Backend;
}

namespace moe::comm {

struct NcclOptions {
  double timeout_s = 600;  // a collective unfinished after this long aborts the communicator
  // Wait for every collective before returning: errors surface at the failing call and the
  // caller's timers measure the transfer. false: only host-staged calls, barrier() and
  // synchronize() wait; device work stays queued on the stream.
  bool blocking = true;
};

// An NCCL communicator over the ranks of `comm`, on `backend`'s device and stream (backend must
// be the CUDA backend). Throws InputError in a build without CUDA or for a CPU backend.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, ops::Backend& backend,
                                                     NcclOptions opt = {});

}  // namespace moe::comm
