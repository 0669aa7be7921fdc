// MPI implementation of Communicator. Device buffers are copied to host, exchanged, copied back;
// a communicator of one rank copies nothing through the host (its collectives are identities or
// one copy on the buffers' device).
#include "comm/mpi_communicator.h"

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/core/tensor.h"

namespace moe::comm {
namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string(call) + " failed: " + std::string(msg, len));
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::BF16: return MPI_UINT16_T;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op, DType t) {
  MOE_CHECK(t != DType::BF16, "MPI reductions on bf16 are not supported");
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

int as_int(int64_t v, const char* what) {
  MOE_CHECK(v >= 0 && v <= INT_MAX, what, " = ", v, " does not fit MPI's int counts");
  return static_cast<int>(v);
}

// Host mirror of a device buffer for the duration of one call.
class Staged {
 public:
  Staged(const void* p, int64_t bytes, Device dev, bool copy_in)
      : dev_(dev), ptr_(const_cast<void*>(p)), bytes_(bytes) {
    if (dev_ == Device::CPU) return;
    host_.resize(bytes);
    if (copy_in) copy_bytes(host_.data(), Device::CPU, p, dev, bytes);
  }
  void* host() { return dev_ == Device::CPU ? ptr_ : host_.data(); }
  void copy_out() {
    if (dev_ != Device::CPU) copy_bytes(ptr_, dev_, host_.data(), Device::CPU, bytes_);
  }

 private:
  Device dev_;
  void* ptr_;
  int64_t bytes_;
  std::vector<char> host_;
};

// A one-rank collective's only work: dst = src on their device (nothing when in place).
void local_copy(void* dst, const void* src, int64_t bytes, Device dev) {
  if (bytes > 0 && dst != src) copy_bytes(dst, dev, src, dev, size_t(bytes));
}

}  // namespace

std::vector<int64_t> displacements(const std::vector<int64_t>& counts) {
  std::vector<int64_t> d(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned, std::shared_ptr<Watchdog> watchdog)
    : comm_(comm), owned_(owned), watchdog_(std::move(watchdog)) {
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  if (!watchdog_) {
    int world_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    watchdog_ = std::make_shared<Watchdog>(world_rank);
  }
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && !finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op, Device device) {
  int64_t bytes = count * dtype_size(dtype);
  if (size_ == 1) return;  // the sum over one rank is the buffer itself
  Staged b(buf, bytes, device, true);
  Watchdog::Scope w(guard(), "MPI_Allreduce");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, b.host(), as_int(count, "all_reduce count"), mpi_type(dtype),
                          mpi_op(op, dtype), comm_),
            "MPI_Allreduce");
  b.copy_out();
}

void MpiCommunicator::all_to_all(const void* send, void* recv, int64_t count, DType dtype,
                                 Device device) {
  int64_t bytes = count * size_ * dtype_size(dtype);
  if (size_ == 1) return local_copy(recv, send, bytes, device);
  Staged s(send, bytes, device, true), r(recv, bytes, device, false);
  Watchdog::Scope w(guard(), "MPI_Alltoall");
  check_mpi(MPI_Alltoall(s.host(), as_int(count, "all_to_all count"), mpi_type(dtype), r.host(),
                         static_cast<int>(count), mpi_type(dtype), comm_),
            "MPI_Alltoall");
  r.copy_out();
}

void MpiCommunicator::all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                                   const std::vector<int64_t>& send_displs, void* recv,
                                   const std::vector<int64_t>& recv_counts,
                                   const std::vector<int64_t>& recv_displs, DType dtype,
                                   Device device) {
  MOE_CHECK(int(send_counts.size()) == size_ && int(send_displs.size()) == size_ &&
                int(recv_counts.size()) == size_ && int(recv_displs.size()) == size_,
            "all_to_all_v needs one count and displacement per rank");
  std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
  int64_t send_end = 0, recv_end = 0;
  for (int i = 0; i < size_; ++i) {
    sc[i] = as_int(send_counts[i], "send count");
    sd[i] = as_int(send_displs[i], "send displacement");
    rc[i] = as_int(recv_counts[i], "recv count");
    rd[i] = as_int(recv_displs[i], "recv displacement");
    send_end = std::max(send_end, send_displs[i] + send_counts[i]);
    recv_end = std::max(recv_end, recv_displs[i] + recv_counts[i]);
  }
  size_t es = dtype_size(dtype);
  if (size_ == 1) {
    MOE_CHECK(send_counts[0] == recv_counts[0], "all_to_all_v on one rank: sends ", send_counts[0],
              " elements to itself, receives ", recv_counts[0]);
    return local_copy(static_cast<char*>(recv) + recv_displs[0] * es,
                      static_cast<const char*>(send) + send_displs[0] * es, send_counts[0] * es,
                      device);
  }
  Staged s(send, send_end * es, device, true), r(recv, recv_end * es, device, false);
  Watchdog::Scope w(guard(), "MPI_Alltoallv");
  check_mpi(MPI_Alltoallv(s.host(), sc.data(), sd.data(), mpi_type(dtype), r.host(), rc.data(),
                          rd.data(), mpi_type(dtype), comm_),
            "MPI_Alltoallv");
  r.copy_out();
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                     ReduceOp op, Device device) {
  size_t es = dtype_size(dtype);
  if (size_ == 1) return local_copy(recv, send, recv_count * int64_t(es), device);
  Staged s(send, recv_count * size_ * es, device, true), r(recv, recv_count * es, device, false);
  Watchdog::Scope w(guard(), "MPI_Reduce_scatter_block");
  check_mpi(MPI_Reduce_scatter_block(s.host(), r.host(), as_int(recv_count, "reduce_scatter count"),
                                     mpi_type(dtype), mpi_op(op, dtype), comm_),
            "MPI_Reduce_scatter_block");
  r.copy_out();
}

void MpiCommunicator::all_gather(const void* send, void* recv, int64_t send_count, DType dtype,
                                 Device device) {
  size_t es = dtype_size(dtype);
  if (size_ == 1) return local_copy(recv, send, send_count * int64_t(es), device);
  Staged s(send, send_count * es, device, true), r(recv, send_count * size_ * es, device, false);
  Watchdog::Scope w(guard(), "MPI_Allgather");
  check_mpi(MPI_Allgather(s.host(), as_int(send_count, "all_gather count"), mpi_type(dtype),
                          r.host(), static_cast<int>(send_count), mpi_type(dtype), comm_),
            "MPI_Allgather");
  r.copy_out();
}

void MpiCommunicator::broadcast(void* buf, int64_t count, DType dtype, int root, Device device) {
  if (size_ == 1) return;
  Staged b(buf, count * dtype_size(dtype), device, true);
  Watchdog::Scope w(guard(), "MPI_Bcast");
  check_mpi(MPI_Bcast(b.host(), as_int(count, "broadcast count"), mpi_type(dtype), root, comm_),
            "MPI_Bcast");
  b.copy_out();
}

void MpiCommunicator::barrier() {
  Watchdog::Scope w(guard(), "MPI_Barrier");
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm sub;
  Watchdog::Scope w(guard(), "MPI_Comm_split");
  check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  return std::make_unique<MpiCommunicator>(sub, true, watchdog_);
}

void mpi_init(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

void mpi_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace moe::comm
