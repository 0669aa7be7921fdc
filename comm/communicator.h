// The communication interface the trainer is written against. MPI (comm/mpi_communicator) is
// the reference; NCCL (comm/nccl_communicator, CUDA builds) implements the same calls on device
// buffers. Counts are in elements; `device` says where the buffers live (the MPI backend stages
// device buffers through host memory, since the MPI it targets is not CUDA-aware).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/core/dtype.h"

namespace moe::comm {

enum class ReduceOp { Sum, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;

  // In place: buf = op over ranks of buf.
  virtual void all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op,
                          Device device = Device::CPU) = 0;
  // Rank i sends send[i*count .. (i+1)*count) to rank j... : block j of send goes to rank j,
  // block i of recv comes from rank i.
  virtual void all_to_all(const void* send, void* recv, int64_t count, DType dtype,
                          Device device = Device::CPU) = 0;
  // Variable blocks: send_counts[j] elements at send_displs[j] go to rank j; recv_counts[i]
  // elements from rank i land at recv_displs[i].
  virtual void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                            const std::vector<int64_t>& send_displs, void* recv,
                            const std::vector<int64_t>& recv_counts,
                            const std::vector<int64_t>& recv_displs, DType dtype,
                            Device device = Device::CPU) = 0;
  // send holds size() blocks of recv_count elements; block i is reduced into rank i's recv.
  virtual void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                              ReduceOp op, Device device = Device::CPU) = 0;
  // recv holds size() blocks of send_count elements, block i from rank i.
  virtual void all_gather(const void* send, void* recv, int64_t send_count, DType dtype,
                          Device device = Device::CPU) = 0;
  virtual void broadcast(void* buf, int64_t count, DType dtype, int root,
                         Device device = Device::CPU) = 0;
  virtual void barrier() = 0;
  // Sub-communicator of the ranks with the same color, ordered by key (MPI_Comm_split).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Seconds any blocking call may take before this rank stops the whole job (a peer hangs or
  // died unnoticed); 0 = wait forever. Shared with every communicator split from this one.
  // Backends with their own mechanism (NCCL's NcclOptions::timeout_s) may ignore it.
  virtual void set_timeout(double seconds) { (void)seconds; }
  // A directory every rank can see (the run directory): each rank's watchdog writes a heartbeat
  // file there, and a rank whose collective times out reads them to name the culprit.
  virtual void set_heartbeat_dir(const std::string& dir) { (void)dir; }

  // Typed conveniences on host values.
  double sum(double v) { all_reduce(&v, 1, DType::F64, ReduceOp::Sum); return v; }
  double max(double v) { all_reduce(&v, 1, DType::F64, ReduceOp::Max); return v; }
  int64_t sum(int64_t v) { all_reduce(&v, 1, DType::I64, ReduceOp::Sum); return v; }
  int64_t max(int64_t v) { all_reduce(&v, 1, DType::I64, ReduceOp::Max); return v; }
};

// Exclusive prefix offsets of counts: displs[i] = sum_{j<i} counts[j].
std::vector<int64_t> displacements(const std::vector<int64_t>& counts);

}  // namespace moe::comm
