// The MPI communicator (the reference backend). Errors return codes (MPI_ERRORS_RETURN) that
// become moe::Error naming the call; device buffers are staged through host memory. Every
// blocking call runs under the process's collective watchdog (comm/watchdog.h), shared by the
// world and every communicator split from it.
#pragma once
#include <mpi.h>

#include <memory>

#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace moe::comm {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps (does not own) MPI_COMM_WORLD, or owns a communicator made by split(); a split shares
  // its parent's watchdog (null: a new one, off until set_timeout).
  explicit MpiCommunicator(MPI_Comm comm, bool owned = false,
                           std::shared_ptr<Watchdog> watchdog = nullptr);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }
  MPI_Comm handle() const { return comm_; }

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
  void set_timeout(double seconds) override { watchdog_->set_timeout(seconds); }
  void set_heartbeat_dir(const std::string& dir) override { watchdog_->set_heartbeat_dir(dir, size_); }

 private:
  // The watchdog while a timeout is set, else null (no clock reads at all).
  Watchdog* guard() const { return watchdog_->timeout() > 0 ? watchdog_.get() : nullptr; }

  MPI_Comm comm_;
  bool owned_;
  std::shared_ptr<Watchdog> watchdog_;
  int rank_ = 0, size_ = 1;
};

// MPI_Init_thread once per process (idempotent) and MPI_Finalize at exit.
void mpi_init(int* argc, char*** argv);
void mpi_finalize();

}  // namespace moe::comm
