// The NCCL communicator against the MPI one (the reference), on device buffers and on host
// buffers (staged), at the world size the suite runs with. NCCL refuses two ranks on one GPU,
// so these tests skip when the world has more ranks than there are devices (the one-GPU
// machine runs them at 1 rank; a multi-GPU machine under mpirun -np P runs them at P).
// Values are small integers, so every sum is exact and results are compared bit for bit.
#include "comm/nccl_communicator.h"
#include "tests/cuda/cuda_test_util.h"

namespace moe::test {
namespace {

class NcclTest : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    if (world().size() > ops::cuda_device_count())
      GTEST_SKIP() << "NCCL needs one GPU per rank: " << world().size() << " ranks, "
                   << ops::cuda_device_count() << " GPUs";
    if (!nccl_) nccl_ = comm::make_nccl_communicator(MPI_COMM_WORLD, gpu());
  }
  comm::Communicator& nccl() { return *nccl_; }
  static void TearDownTestSuite() { nccl_.reset(); }
  static std::unique_ptr<comm::Communicator> nccl_;
};
std::unique_ptr<comm::Communicator> NcclTest::nccl_;

// Integers in [-8, 8) as f32, distinct per rank and element.
Tensor int_values(int64_t n, int salt) {
  Tensor t = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i)
    t.data<float>()[i] = float((i * 7 + salt * 13 + world().rank() * 5) % 16 - 8);
  return t;
}

TEST_F(NcclTest, RankAndSize) {
  EXPECT_EQ(nccl().rank(), world().rank());
  EXPECT_EQ(nccl().size(), world().size());
  EXPECT_STREQ(nccl().backend(), "nccl");
  nccl().barrier();
}

TEST_F(NcclTest, AllReduceMatchesMpi) {
  for (comm::ReduceOp op : {comm::ReduceOp::Sum, comm::ReduceOp::Max, comm::ReduceOp::Min}) {
    Tensor h = int_values(1000, int(op));
    Tensor a = h.to(Device::CUDA), b = h.to(Device::CUDA);
    nccl().all_reduce(a.raw(), 1000, DType::F32, op, Device::CUDA);
    world().all_reduce(b.raw(), 1000, DType::F32, op, Device::CUDA);
    EXPECT_TRUE(same_bits(a, b)) << "op " << int(op);
  }
  // Host buffers are staged through the device; the typed conveniences use them.
  EXPECT_EQ(nccl().sum(double(world().rank() + 1)), world().sum(double(world().rank() + 1)));
  EXPECT_EQ(nccl().max(int64_t(world().rank())), int64_t(world().size() - 1));
}

TEST_F(NcclTest, AllToAllMatchesMpi) {
  const int P = world().size();
  const int64_t count = 37;
  Tensor h = int_values(count * P, 1);
  Tensor s = h.to(Device::CUDA);
  Tensor a = Tensor::zeros({count * P}, DType::F32, Device::CUDA);
  Tensor b = Tensor::zeros({count * P}, DType::F32, Device::CUDA);
  nccl().all_to_all(s.raw(), a.raw(), count, DType::F32, Device::CUDA);
  world().all_to_all(s.raw(), b.raw(), count, DType::F32, Device::CUDA);
  EXPECT_TRUE(same_bits(a, b));
  // What all_to_all runs where NCCL is older than 2.28 (no ncclAlltoAll): all_to_all_v's group
  // of sends and receives with P equal blocks.
  const std::vector<int64_t> counts(size_t(P), count), displs = comm::displacements(counts);
  Tensor c = Tensor::zeros({count * P}, DType::F32, Device::CUDA);
  nccl().all_to_all_v(s.raw(), counts, displs, c.raw(), counts, displs, DType::F32, Device::CUDA);
  EXPECT_TRUE(same_bits(c, b));
}

// Uneven blocks, including empty ones in both directions, in bf16 (bytes moved as they are).
TEST_F(NcclTest, AllToAllVMatchesMpi) {
  const int P = world().size(), r = world().rank();
  std::vector<int64_t> sc(P), rc(P);
  for (int j = 0; j < P; ++j) {
    sc[j] = ((r + 2 * j + 1) % 3 == 0) ? 0 : 5 + r + 3 * j;  // what r sends to j
    rc[j] = ((j + 2 * r + 1) % 3 == 0) ? 0 : 5 + j + 3 * r;  // what j sends to r
  }
  const std::vector<int64_t> sd = comm::displacements(sc), rd = comm::displacements(rc);
  int64_t ns = 0, nr = 0;
  for (int j = 0; j < P; ++j) {
    ns += sc[j];
    nr += rc[j];
  }
  Tensor s = to_backend(int_values(std::max<int64_t>(ns, 1), 2), Device::CUDA, DType::BF16);
  Tensor a = Tensor::zeros({std::max<int64_t>(nr, 1)}, DType::BF16, Device::CUDA);
  Tensor b = Tensor::zeros({std::max<int64_t>(nr, 1)}, DType::BF16, Device::CUDA);
  nccl().all_to_all_v(s.raw(), sc, sd, a.raw(), rc, rd, DType::BF16, Device::CUDA);
  world().all_to_all_v(s.raw(), sc, sd, b.raw(), rc, rd, DType::BF16, Device::CUDA);
  EXPECT_TRUE(same_bits(a, b));
  // The same exchange from host buffers.
  Tensor hs = s.to(Device::CPU), ha = Tensor::zeros(a.shape(), DType::BF16, Device::CPU);
  nccl().all_to_all_v(hs.raw(), sc, sd, ha.raw(), rc, rd, DType::BF16, Device::CPU);
  EXPECT_TRUE(same_bits(ha.to(Device::CUDA), b));
}

TEST_F(NcclTest, ReduceScatterAllGatherBroadcastMatchMpi) {
  const int P = world().size();
  const int64_t count = 50;
  Tensor h = int_values(count * P, 3);
  Tensor s = h.to(Device::CUDA);
  Tensor a = Tensor::zeros({count}, DType::F32, Device::CUDA), b = a.clone();
  nccl().reduce_scatter(s.raw(), a.raw(), count, DType::F32, comm::ReduceOp::Sum, Device::CUDA);
  world().reduce_scatter(s.raw(), b.raw(), count, DType::F32, comm::ReduceOp::Sum, Device::CUDA);
  EXPECT_TRUE(same_bits(a, b));
  Tensor g1 = Tensor::zeros({count * P}, DType::F32, Device::CUDA), g2 = g1.clone();
  nccl().all_gather(a.raw(), g1.raw(), count, DType::F32, Device::CUDA);
  world().all_gather(a.raw(), g2.raw(), count, DType::F32, Device::CUDA);
  EXPECT_TRUE(same_bits(g1, g2));
  for (int root = 0; root < P; ++root) {
    Tensor x = int_values(count, 4 + root).to(Device::CUDA), y = x.clone();
    nccl().broadcast(x.raw(), count, DType::F32, root, Device::CUDA);
    world().broadcast(y.raw(), count, DType::F32, root, Device::CUDA);
    EXPECT_TRUE(same_bits(x, y)) << "root " << root;
  }
  // Int64 through host staging.
  std::vector<int64_t> v(8, int64_t(world().rank()) + 1);
  nccl().all_reduce(v.data(), 8, DType::I64, comm::ReduceOp::Sum, Device::CPU);
  EXPECT_EQ(v[7], int64_t(P) * (P + 1) / 2);
}

TEST_F(NcclTest, SplitMatchesMpi) {
  const int r = world().rank();
  auto sub = nccl().split(r % 2, r);
  auto ref = world().split(r % 2, r);
  EXPECT_EQ(sub->rank(), ref->rank());
  EXPECT_EQ(sub->size(), ref->size());
  Tensor h = int_values(64, 5);
  Tensor a = h.to(Device::CUDA), b = h.to(Device::CUDA);
  sub->all_reduce(a.raw(), 64, DType::F32, comm::ReduceOp::Sum, Device::CUDA);
  ref->all_reduce(b.raw(), 64, DType::F32, comm::ReduceOp::Sum, Device::CUDA);
  EXPECT_TRUE(same_bits(a, b));
  sub->barrier();
}

TEST_F(NcclTest, HostPointerFlaggedAsDeviceIsRejected) {
  std::vector<float> host(16, 1.0f);
  try {
    nccl().all_reduce(host.data(), 16, DType::F32, comm::ReduceOp::Sum, Device::CUDA);
    FAIL() << "a host buffer passed as Device::CUDA was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "host memory")) << e.what();
  }
  // Rejected before anything was queued: the communicator still works.
  EXPECT_EQ(nccl().sum(1.0), double(world().size()));
}

}  // namespace
}  // namespace moe::test
