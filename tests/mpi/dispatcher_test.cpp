// The dispatcher round trip, with gradients: combine(dispatch(x)) = x * sum_k w_k for any
// routing, at every world size of the suite, including empty experts, dropped assignments,
// ranks that receive nothing and ranks with no tokens. Experts are the identity, so every row
// can be traced: column 0 carries the source rank and column 1 the token index.
#include "models/moe/dispatcher.h"
#include "tests/mpi/mpi_util.h"

namespace moe::test {
namespace {

enum class Routing { Random, AllToRank0, FewExperts };

// The routing of token t on rank r, reproducible on every rank.
std::vector<int32_t> route(int r, int64_t t, int K, int64_t M, Routing kind) {
  rng::Stream s(rng::make_key(99, "route"), uint64_t(r) * 100003 + uint64_t(t));
  std::vector<int32_t> out;
  const int64_t pool = kind == Routing::Random ? M : kind == Routing::AllToRank0 ? K : std::min<int64_t>(M, K + 1);
  while (int(out.size()) < K) {
    int32_t e = int32_t(s.next_below(pool));
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

void round_trip(Routing kind, bool drops, bool last_rank_empty) {
  auto& w = world();
  const int P = w.size(), r = w.rank(), K = 2;
  const int64_t Ml = 3, M = Ml * P, N = 5;
  const int64_t n = (last_rank_empty && r == P - 1) ? 0 : 7 + r;
  std::vector<int32_t> idx(n * K);
  std::vector<uint8_t> kept(n * K, 1);
  for (int64_t t = 0; t < n; ++t) {
    auto e = route(r, t, K, M, kind);
    for (int k = 0; k < K; ++k) {
      idx[t * K + k] = e[k];
      if (drops) kept[t * K + k] = (t + k) % 3 != 0;
    }
  }
  Tensor x = randn({n, N}, DType::F64, "x" + std::to_string(r));
  for (int64_t t = 0; t < n; ++t) {
    set(x, t * N + 0, r);
    set(x, t * N + 1, double(t));
  }
  Tensor wt = randn({n, K}, DType::F64, "w" + std::to_string(r));
  models::Dispatcher d(w, Ml);
  d.plan(idx.data(), kept.data(), n, K);
  Tensor x_recv;
  d.dispatch(cpu(), x, x_recv);
  // every received row belongs to a token that chose this segment's expert
  for (const ops::Segment& s : d.segments())
    for (int64_t row = s.begin; row < s.end; ++row) {
      int src = int(get(x_recv, row * N)), t = int(get(x_recv, row * N + 1));
      auto e = route(src, t, K, M, kind);
      EXPECT_NE(std::find(e.begin(), e.end(), int32_t(r * Ml + s.group)), e.end())
          << "row " << row << " from rank " << src << " token " << t;
    }
  Tensor out = Tensor::empty({n, N}, DType::F64);
  d.combine(cpu(), x_recv, wt, 1.0, out);
  for (int64_t t = 0; t < n; ++t) {
    double ws = 0;
    for (int k = 0; k < K; ++k) ws += kept[t * K + k] ? get(wt, t * K + k) : 0.0;
    for (int64_t j = 0; j < N; ++j) EXPECT_NEAR(get(out, t * N + j), get(x, t * N + j) * ws, 1e-12);
  }
  // backward through identity experts
  Tensor dout = randn({n, N}, DType::F64, "dout" + std::to_string(r));
  Tensor dy_recv, dw = Tensor::empty({n, K}, DType::F64);
  d.combine_backward(cpu(), dout, wt, 1.0, dy_recv, dw);
  Tensor dx = Tensor::zeros({n, N}, DType::F64);
  d.dispatch_backward(cpu(), dy_recv, dx);
  for (int64_t t = 0; t < n; ++t) {
    double ws = 0, xd = 0;
    for (int k = 0; k < K; ++k) ws += kept[t * K + k] ? get(wt, t * K + k) : 0.0;
    for (int64_t j = 0; j < N; ++j) {
      EXPECT_NEAR(get(dx, t * N + j), get(dout, t * N + j) * ws, 1e-12);
      xd += get(dout, t * N + j) * get(x, t * N + j);
    }
    for (int k = 0; k < K; ++k) EXPECT_NEAR(get(dw, t * K + k), kept[t * K + k] ? xd : 0.0, 1e-12);
  }
  // rows received add up to the rows sent, over the world
  int64_t sent = d.current().m_send, recvd = d.current().m_recv;
  EXPECT_EQ(w.sum(sent), w.sum(recvd));
}

TEST(Dispatcher, RandomRouting) { round_trip(Routing::Random, false, false); }
TEST(Dispatcher, WithDrops) { round_trip(Routing::Random, true, false); }
TEST(Dispatcher, IdleReceivers) { round_trip(Routing::AllToRank0, false, false); }
TEST(Dispatcher, EmptyExperts) { round_trip(Routing::FewExperts, true, false); }
TEST(Dispatcher, RankWithoutTokens) { round_trip(Routing::Random, false, true); }

}  // namespace
}  // namespace moe::test
