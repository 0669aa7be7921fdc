// NCCL implementation of Communicator (CUDA builds): device buffers on the backend's stream,
// host buffers staged through device memory, asynchronous errors and hangs turned into
// moe::Error by polling while waiting.
#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <thread>

#include "comm/mpi_communicator.h"
#include "src/core/error.h"
#include "src/ops/cuda/cuda_backend.h"

namespace moe::comm {
namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

size_t bytes_of(int64_t count, DType t) {
  MOE_CHECK(count >= 0, "negative element count ", count);
  return size_t(count) * dtype_size(t);
}

// A device copy of a host buffer for one call, on the communicator's stream.
class Staged {
 public:
  Staged(void* host, size_t bytes, Device dev, cudaStream_t s, bool copy_in)
      : host_(host), bytes_(bytes), stream_(s), staged_(dev == Device::CPU && bytes > 0) {
    if (!staged_) return;
    check(cudaMallocAsync(&dev_, bytes, s), "cudaMallocAsync");
    if (copy_in) {
      check(cudaMemcpyAsync(dev_, host, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
      count_transfer(Device::CUDA, Device::CPU, bytes);
    }
  }
  ~Staged() {
    if (staged_ && dev_) cudaFreeAsync(dev_, stream_);
  }
  Staged(const Staged&) = delete;
  Staged& operator=(const Staged&) = delete;
  bool staged() const { return staged_; }
  void* ptr() const { return staged_ ? dev_ : host_; }
  // Copies the result back to the host buffer. Called once the collective is known to have
  // finished (a copy queued behind a hung collective would block the host with no timeout).
  void copy_out() {
    if (!staged_) return;
    check(cudaMemcpyAsync(host_, dev_, bytes_, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    count_transfer(Device::CPU, Device::CUDA, bytes_);
    count_host_sync();
  }

 private:
  static void check(cudaError_t e, const char* call) {
    if (e != cudaSuccess)
      throw Error(detail::cat("NCCL communicator: ", call,
                              " for a host buffer failed: ", cudaGetErrorString(e)));
  }
  void* host_;
  size_t bytes_;
  cudaStream_t stream_;
  bool staged_;
  void* dev_ = nullptr;
};

}  // namespace

NcclCommunicator::NcclCommunicator(MPI_Comm mpi, int device, CUstream_st* stream, NcclOptions opt)
    : device_(device), stream_(stream), opt_(opt) {
  MPI_Comm dup;
  MOE_CHECK(MPI_Comm_dup(mpi, &dup) == MPI_SUCCESS, "MPI_Comm_dup for the NCCL communicator");
  mpi_ = std::make_unique<MpiCommunicator>(dup, true);
  rank_ = mpi_->rank();
  size_ = mpi_->size();
  MOE_CHECK(cudaSetDevice(device_) == cudaSuccess, "cudaSetDevice(", device_, ") on rank ", rank_);
  // Rank 0's id, or its failure, reaches every rank, so that no rank waits in init alone.
  struct {
    int ok;
    ncclUniqueId id;
  } msg{};
  if (rank_ == 0) msg.ok = ncclGetUniqueId(&msg.id) == ncclSuccess;
  MOE_CHECK(MPI_Bcast(&msg, sizeof msg, MPI_BYTE, 0, mpi_->handle()) == MPI_SUCCESS,
            "MPI_Bcast of the NCCL unique id on rank ", rank_);
  MOE_CHECK(msg.ok, "ncclGetUniqueId failed on rank 0");
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRank(&comm, size_, msg.id, rank_);
  if (r != ncclSuccess)
    throw Error(detail::cat("ncclCommInitRank failed on rank ", rank_, " (device ", device_,
                            "): ", ncclGetErrorString(r), " ", ncclGetLastError(nullptr)));
  comm_ = comm;
  init_event();
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<MpiCommunicator> mpi, ncclComm* comm, int device,
                                   CUstream_st* stream, NcclOptions opt)
    : mpi_(std::move(mpi)), comm_(comm), device_(device), stream_(stream), opt_(opt) {
  rank_ = mpi_->rank();
  size_ = mpi_->size();
  init_event();
}

void NcclCommunicator::init_event() {
  cudaEvent_t ev = nullptr;
  MOE_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) == cudaSuccess,
            "cudaEventCreate on rank ", rank_);
  event_ = ev;
}

NcclCommunicator::~NcclCommunicator() {
  // Never throws. An aborted communicator is already gone; otherwise destroy waits for the
  // communicator's queued work.
  if (comm_ && !aborted_) ncclCommDestroy(comm_);
  if (event_) cudaEventDestroy(event_);
  cudaGetLastError();
}

void NcclCommunicator::check_usable(const char* call) const {
  MOE_CHECK(!aborted_, "NCCL ", call, " on rank ", rank_,
            ": the communicator was aborted after an earlier error");
}

void NcclCommunicator::check_device_ptr(const void* p, const char* call) const {
  if (p == nullptr) return;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    MOE_CHECK(false, "NCCL ", call, " on rank ", rank_, ": buffer ", p, " is not CUDA memory");
  }
  MOE_CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged, "NCCL ", call,
            " on rank ", rank_, ": Device::CUDA buffer ", p, " is host memory");
}

void NcclCommunicator::abort_and_throw(const std::string& what) {
  if (comm_ && !aborted_) ncclCommAbort(comm_);
  aborted_ = true;
  comm_ = nullptr;
  throw Error(what);
}

void NcclCommunicator::check(int result, const char* call) {
  const auto r = static_cast<ncclResult_t>(result);
  if (r == ncclSuccess) return;
  const std::string last = comm_ ? ncclGetLastError(comm_) : "";
  abort_and_throw(detail::cat("NCCL ", call, " failed on rank ", rank_, " of ", size_, " (device ",
                              device_, "): ", ncclGetErrorString(r), last.empty() ? "" : " (", last,
                              last.empty() ? "" : ")"));
}

void NcclCommunicator::synchronize(const char* what) {
  check_usable(what);
  MOE_CHECK(cudaEventRecord(event_, stream_) == cudaSuccess, "cudaEventRecord on rank ", rank_);
  count_host_sync();  // the host waits for the collective (the watchdog polls it)
  const auto t0 = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    const cudaError_t e = cudaEventQuery(event_);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) {
      cudaGetLastError();
      abort_and_throw(detail::cat("NCCL ", what, " on rank ", rank_,
                                  ": CUDA error while waiting: ", cudaGetErrorString(e)));
    }
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    if (r != ncclSuccess) check(r, "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress)
      abort_and_throw(detail::cat("NCCL ", what, " failed asynchronously on rank ", rank_, " of ",
                                  size_, ": ", ncclGetErrorString(async), " (",
                                  ncclGetLastError(comm_), "); communicator aborted"));
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (waited > opt_.timeout_s)
      abort_and_throw(detail::cat("NCCL ", what, " on rank ", rank_, " of ", size_,
                                  " did not finish within ", opt_.timeout_s,
                                  " s (a peer failed or called a different collective); "
                                  "communicator aborted"));
    // Spin briefly for short collectives, then back off so that a long wait costs no core.
    if (polls > 1000)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    else
      std::this_thread::yield();
  }
}

void NcclCommunicator::issued(const char* call) {
  if (opt_.blocking) synchronize(call);
}

void NcclCommunicator::all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op,
                                  Device device) {
  check_usable("ncclAllReduce");
  if (count == 0) return;
  if (device == Device::CUDA) check_device_ptr(buf, "ncclAllReduce");
  Staged b(buf, bytes_of(count, dtype), device, stream_, true);
  check(
      ncclAllReduce(b.ptr(), b.ptr(), size_t(count), nccl_type(dtype), nccl_op(op), comm_, stream_),
      "ncclAllReduce");
  if (b.staged()) {  // host buffers: wait (polling), then copy the result back
    synchronize("ncclAllReduce");
    b.copy_out();
  } else {
    issued("ncclAllReduce");
  }
}

// ncclAlltoAll exists from NCCL 2.28; clusters commonly run 2.18-2.27 (2.18 being the first
// with ncclCommSplit, which split() needs). There the equal split is all_to_all_v's group of
// ncclSend / ncclRecv with P equal blocks, which is what ncclAlltoAll does inside.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
void NcclCommunicator::all_to_all(const void* send, void* recv, int64_t count, DType dtype,
                                  Device device) {
  check_usable("ncclAlltoAll");
  if (count == 0) return;
  const size_t bytes = bytes_of(count, dtype) * size_t(size_);
  if (device == Device::CUDA) {
    check_device_ptr(send, "ncclAlltoAll");
    check_device_ptr(recv, "ncclAlltoAll");
  }
  Staged s(const_cast<void*>(send), bytes, device, stream_, true),
      r(recv, bytes, device, stream_, false);
  check(ncclAlltoAll(s.ptr(), r.ptr(), size_t(count), nccl_type(dtype), comm_, stream_),
        "ncclAlltoAll");
  if (r.staged()) {
    synchronize("ncclAlltoAll");
    r.copy_out();
  } else {
    issued("ncclAlltoAll");
  }
}
#else
void NcclCommunicator::all_to_all(const void* send, void* recv, int64_t count, DType dtype,
                                  Device device) {
  check_usable("all_to_all");
  if (count == 0) return;
  const std::vector<int64_t> counts(size_t(size_), count);
  const std::vector<int64_t> displs = displacements(counts);
  all_to_all_v(send, counts, displs, recv, counts, displs, dtype, device);
}
#endif

void NcclCommunicator::all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                                    const std::vector<int64_t>& send_displs, void* recv,
                                    const std::vector<int64_t>& recv_counts,
                                    const std::vector<int64_t>& recv_displs, DType dtype,
                                    Device device) {
  check_usable("all_to_all_v");
  MOE_CHECK(int(send_counts.size()) == size_ && int(send_displs.size()) == size_ &&
                int(recv_counts.size()) == size_ && int(recv_displs.size()) == size_,
            "all_to_all_v needs one count and displacement per rank");
  int64_t send_end = 0, recv_end = 0;
  for (int i = 0; i < size_; ++i) {
    MOE_CHECK(
        send_counts[i] >= 0 && send_displs[i] >= 0 && recv_counts[i] >= 0 && recv_displs[i] >= 0,
        "all_to_all_v: negative count or displacement for rank ", i);
    send_end = std::max(send_end, send_displs[i] + send_counts[i]);
    recv_end = std::max(recv_end, recv_displs[i] + recv_counts[i]);
  }
  if (device == Device::CUDA) {
    if (send_end > 0) check_device_ptr(send, "all_to_all_v");
    if (recv_end > 0) check_device_ptr(recv, "all_to_all_v");
  }
  const size_t es = dtype_size(dtype);
  Staged s(const_cast<void*>(send), bytes_of(send_end, dtype), device, stream_, true);
  Staged r(recv, bytes_of(recv_end, dtype), device, stream_, false);
  const char* sp = static_cast<const char*>(s.ptr());
  char* rp = static_cast<char*>(r.ptr());
  const ncclDataType_t t = nccl_type(dtype);
  // One group: NCCL matches every send with its receive without ordering deadlocks. The first
  // error is kept and reported after ncclGroupEnd, which must run to close the group.
  ncclResult_t first = ncclGroupStart();
  if (first != ncclSuccess) check(first, "ncclGroupStart");
  for (int peer = 0; peer < size_; ++peer) {
    if (send_counts[peer] > 0) {
      ncclResult_t e =
          ncclSend(sp + send_displs[peer] * es, size_t(send_counts[peer]), t, peer, comm_, stream_);
      if (first == ncclSuccess) first = e;
    }
    if (recv_counts[peer] > 0) {
      ncclResult_t e =
          ncclRecv(rp + recv_displs[peer] * es, size_t(recv_counts[peer]), t, peer, comm_, stream_);
      if (first == ncclSuccess) first = e;
    }
  }
  ncclResult_t end = ncclGroupEnd();
  check(first != ncclSuccess ? first : end, "ncclSend/ncclRecv group (all_to_all_v)");
  if (s.staged() || r.staged()) {
    synchronize("all_to_all_v");
    r.copy_out();
  } else {
    issued("all_to_all_v");
  }
}

void NcclCommunicator::reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                      ReduceOp op, Device device) {
  check_usable("ncclReduceScatter");
  if (recv_count == 0) return;
  if (device == Device::CUDA) {
    check_device_ptr(send, "ncclReduceScatter");
    check_device_ptr(recv, "ncclReduceScatter");
  }
  const size_t rb = bytes_of(recv_count, dtype);
  Staged s(const_cast<void*>(send), rb * size_t(size_), device, stream_, true);
  Staged r(recv, rb, device, stream_, false);
  check(ncclReduceScatter(s.ptr(), r.ptr(), size_t(recv_count), nccl_type(dtype), nccl_op(op),
                          comm_, stream_),
        "ncclReduceScatter");
  if (r.staged()) {
    synchronize("ncclReduceScatter");
    r.copy_out();
  } else {
    issued("ncclReduceScatter");
  }
}

void NcclCommunicator::all_gather(const void* send, void* recv, int64_t send_count, DType dtype,
                                  Device device) {
  check_usable("ncclAllGather");
  if (send_count == 0) return;
  if (device == Device::CUDA) {
    check_device_ptr(send, "ncclAllGather");
    check_device_ptr(recv, "ncclAllGather");
  }
  const size_t sb = bytes_of(send_count, dtype);
  Staged s(const_cast<void*>(send), sb, device, stream_, true);
  Staged r(recv, sb * size_t(size_), device, stream_, false);
  check(ncclAllGather(s.ptr(), r.ptr(), size_t(send_count), nccl_type(dtype), comm_, stream_),
        "ncclAllGather");
  if (r.staged()) {
    synchronize("ncclAllGather");
    r.copy_out();
  } else {
    issued("ncclAllGather");
  }
}

void NcclCommunicator::broadcast(void* buf, int64_t count, DType dtype, int root, Device device) {
  check_usable("ncclBroadcast");
  MOE_CHECK(0 <= root && root < size_, "broadcast root ", root, " of ", size_, " ranks");
  if (count == 0) return;
  if (device == Device::CUDA) check_device_ptr(buf, "ncclBroadcast");
  Staged b(buf, bytes_of(count, dtype), device, stream_, true);
  check(ncclBroadcast(b.ptr(), b.ptr(), size_t(count), nccl_type(dtype), root, comm_, stream_),
        "ncclBroadcast");
  if (b.staged()) {
    synchronize("ncclBroadcast");
    b.copy_out();
  } else {
    issued("ncclBroadcast");
  }
}

void NcclCommunicator::barrier() {
  synchronize("barrier");  // queued collectives first: their errors surface here
  mpi_->barrier();
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  check_usable("ncclCommSplit");
  MOE_CHECK(color >= 0, "split color ", color, " must be >= 0");
  // The same split on the MPI side (for the child's barrier), then NCCL's.
  MPI_Comm sub;
  MOE_CHECK(MPI_Comm_split(mpi_->handle(), color, key, &sub) == MPI_SUCCESS,
            "MPI_Comm_split on rank ", rank_);
  auto child_mpi = std::make_unique<MpiCommunicator>(sub, true);
  ncclComm_t child = nullptr;
  check(ncclCommSplit(comm_, color, key, &child, nullptr), "ncclCommSplit");
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(std::move(child_mpi), child, device_, stream_, opt_));
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, ops::Backend& backend,
                                                     NcclOptions opt) {
  auto* cuda = dynamic_cast<ops::gpu::CudaBackend*>(&backend);
  if (!cuda) throw InputError("parallel.backend = \"nccl\" needs parallel.device = \"cuda\"", true);
  return std::make_unique<NcclCommunicator>(comm, cuda->device_index(), cuda->stream(), opt);
}

}  // namespace moe::comm
