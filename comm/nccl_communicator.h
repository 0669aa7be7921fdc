// The NCCL communicator: the Communicator interface on device buffers, on the CUDA backend's
// stream. The unique id travels over MPI; all-to-all-v is a group of ncclSend / ncclRecv; split
// is ncclCommSplit. Host buffers (Device::CPU, e.g. the typed sum() conveniences) are staged
// through device memory. While a collective runs, the host polls ncclCommGetAsyncError; an
// asynchronous error or a collective that outlives the timeout (a peer died or diverged) aborts
// the communicator (ncclCommAbort) and throws moe::Error naming the call and the rank, so that
// main can stop every rank instead of hanging.
// Built only with CUDA; code that builds either way includes comm/nccl.h (the factory).
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/nccl.h"

struct ncclComm;
struct CUstream_st;
struct CUevent_st;

namespace moe::ops {
class Backend;
}

namespace moe::comm {

class MpiCommunicator;


class NcclCommunicator final : public Communicator {
 public:
  // Collective over the ranks of `mpi` (a duplicate of it is kept for barrier()): rank 0 makes
  // the NCCL unique id and broadcasts it. `stream` is the compute backend's stream.
  NcclCommunicator(MPI_Comm mpi, int device, CUstream_st* stream, NcclOptions opt = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }

  void all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op, Device device) override;
  void all_to_all(const void* send, void* recv, int64_t count, DType dtype, Device device) override;
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                    const std::vector<int64_t>& send_displs, void* recv,
                    const std::vector<int64_t>& recv_counts,
                    const std::vector<int64_t>& recv_displs, DType dtype, Device device) override;
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op,
                      Device device) override;
  void all_gather(const void* send, void* recv, int64_t send_count, DType dtype,
                  Device device) override;
  void broadcast(void* buf, int64_t count, DType dtype, int root, Device device) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;

  // Waits (polling for NCCL errors, with the timeout) for everything queued on the stream.
  void synchronize(const char* what = "synchronize");

 private:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> mpi, ncclComm* comm, int device,
                   CUstream_st* stream, NcclOptions opt);
  void init_event();
  // After a collective is queued: waits when blocking.
  void issued(const char* call);
  // Throws for a failed NCCL result (int: ncclResult_t), with the call and the rank.
  void check(int result, const char* call);
  [[noreturn]] void abort_and_throw(const std::string& what);
  void check_usable(const char* call) const;
  void check_device_ptr(const void* p, const char* call) const;

  std::unique_ptr<MpiCommunicator> mpi_;
  ncclComm* comm_ = nullptr;
  int device_ = 0;
  CUstream_st* stream_ = nullptr;
  CUevent_st* event_ = nullptr;
  NcclOptions opt_;
  int rank_ = 0, size_ = 1;
  bool aborted_ = false;
};


}  // namespace moe::comm
