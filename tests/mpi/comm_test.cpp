// The MPI communicator's collectives against values computed locally from the definition, at
// every world size the suite runs with (1-4), including empty blocks and sub-communicators.
#include "tests/mpi/mpi_util.h"

namespace moe::test {
namespace {

TEST(Comm, AllReduceSumMaxMin) {
  auto& w = world();
  const int P = w.size(), r = w.rank();
  std::vector<double> v = {double(r), -double(r), 1.0};
  w.all_reduce(v.data(), 3, DType::F64, comm::ReduceOp::Sum);
  EXPECT_EQ(v[0], P * (P - 1) / 2.0);
  EXPECT_EQ(v[1], -P * (P - 1) / 2.0);
  EXPECT_EQ(v[2], double(P));
  int64_t m = r * 7 % 5;
  int64_t mx = w.max(m);
  int64_t expect = 0;
  for (int q = 0; q < P; ++q) expect = std::max<int64_t>(expect, q * 7 % 5);
  EXPECT_EQ(mx, expect);
  int32_t mn = 10 - r;
  w.all_reduce(&mn, 1, DType::I32, comm::ReduceOp::Min);
  EXPECT_EQ(mn, 10 - (P - 1));
}

TEST(Comm, AllToAllV) {
  auto& w = world();
  const int P = w.size(), r = w.rank();
  // rank r sends (r + j) % 3 elements to rank j, valued 1000 r + 10 j + i; some blocks are empty
  std::vector<int64_t> sc(P), rc(P);
  for (int j = 0; j < P; ++j) {
    sc[j] = (r + j) % 3;
    rc[j] = (j + r) % 3;
  }
  auto sd = comm::displacements(sc), rd = comm::displacements(rc);
  std::vector<float> send(sd[P - 1] + sc[P - 1]), recv(rd[P - 1] + rc[P - 1], -1);
  for (int j = 0; j < P; ++j)
    for (int i = 0; i < sc[j]; ++i) send[sd[j] + i] = float(1000 * r + 10 * j + i);
  w.all_to_all_v(send.data(), sc, sd, recv.data(), rc, rd, DType::F32);
  for (int s = 0; s < P; ++s)
    for (int i = 0; i < rc[s]; ++i) EXPECT_EQ(recv[rd[s] + i], float(1000 * s + 10 * r + i));
}

TEST(Comm, AllToAllReduceScatterAllGatherBroadcast) {
  auto& w = world();
  const int P = w.size(), r = w.rank();
  std::vector<int64_t> send(P * 2), recv(P * 2);
  for (int j = 0; j < P; ++j) {
    send[2 * j] = r * 100 + j;
    send[2 * j + 1] = -1;
  }
  w.all_to_all(send.data(), recv.data(), 2, DType::I64);
  for (int s = 0; s < P; ++s) {
    EXPECT_EQ(recv[2 * s], s * 100 + r);
    EXPECT_EQ(recv[2 * s + 1], -1);
  }
  std::vector<double> rs(P * 3), shard(3);
  for (int i = 0; i < P * 3; ++i) rs[i] = i + r;
  w.reduce_scatter(rs.data(), shard.data(), 3, DType::F64, comm::ReduceOp::Sum);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(shard[i], P * double(3 * r + i) + P * (P - 1) / 2.0);
  std::vector<int32_t> mine = {r, 2 * r}, all(2 * P);
  w.all_gather(mine.data(), all.data(), 2, DType::I32);
  for (int s = 0; s < P; ++s) {
    EXPECT_EQ(all[2 * s], s);
    EXPECT_EQ(all[2 * s + 1], 2 * s);
  }
  double b = r == P - 1 ? 42.5 : 0;
  w.broadcast(&b, 1, DType::F64, P - 1);
  EXPECT_EQ(b, 42.5);
}

TEST(Comm, SplitIntoLayout) {
  auto& w = world();
  const int P = w.size();
  for (int ep = 1; ep <= P; ++ep) {
    if (P % ep) continue;
    auto ctx = comm::make_parallel_context(w.split(0, w.rank()), ep, &cpu());
    EXPECT_EQ(ctx.ep->size(), ep);
    EXPECT_EQ(ctx.dp_expert->size(), P / ep);
    EXPECT_EQ(ctx.ep->rank(), w.rank() % ep);
    EXPECT_EQ(ctx.dp_expert->rank(), w.rank() / ep);
    // ranks in one EP group share dp_rank
    int64_t d = ctx.dp_rank;
    EXPECT_EQ(ctx.ep->max(d), d);
  }
}

}  // namespace
}  // namespace moe::test
