// moe bench a2a: the raw all-to-all-v in nccl-tests style (size, count, time, algbw, busbw,
// #wrong), then the dispatcher's dispatch + combine on routed tokens against a bare
// all-to-all-v of the same rows in both directions. Correctness is checked on every run.
#include <chrono>
#include <cstdio>
#include <memory>

#include "launch/bench.h"
#include "models/moe/dispatcher.h"
#include "src/core/rng.h"

namespace moe::launch {
namespace {

struct A2aArgs {
  std::string minbytes = "1K", maxbytes = "16M";
  double stepfactor = 4;
  int iters = 20, warmup = 5;
  std::vector<int64_t> tokens = {256, 1024, 4096};
  int64_t width = 256, experts = 8, top_k = 2;
};

int64_t parse_bytes(const std::string& s) {
  size_t pos = 0;
  double v = std::stod(s, &pos);
  std::string u = s.substr(pos);
  if (u == "K" || u == "k") v *= 1024;
  else if (u == "M" || u == "m") v *= 1024 * 1024;
  else if (u == "G" || u == "g") v *= 1024.0 * 1024 * 1024;
  else if (!u.empty()) throw InputError("bad size '" + s + "' (use a number with K, M or G)", true);
  return int64_t(v);
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Times fn over iters (after warmup), returning the slowest rank's mean seconds.
template <class F>
double timed(comm::Communicator& w, int warmup, int iters, F&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  w.barrier();
  double t0 = now();
  for (int i = 0; i < iters; ++i) fn();
  double t = (now() - t0) / iters;
  return w.max(t);
}

void raw_table(comm::Communicator& w, const A2aArgs& a) {
  const int P = w.size(), r = w.rank();
  if (r == 0) {
    std::printf("# all_to_all_v (%s), %d ranks, float32, %d iters after %d warm-up; size = bytes each rank sends\n",
                "mpi", P, a.iters, a.warmup);
    std::printf("# busbw = algbw * (n-1)/n\n");
    std::printf("%14s %14s %12s %12s %12s %8s\n", "size(B)", "count(elts)", "time(us)", "algbw(GB/s)",
                "busbw(GB/s)", "#wrong");
  }
  for (int64_t bytes = parse_bytes(a.minbytes); bytes <= parse_bytes(a.maxbytes);
       bytes = std::max<int64_t>(bytes + 1, int64_t(bytes * a.stepfactor))) {
    const int64_t per = std::max<int64_t>(1, bytes / 4 / P), count = per * P;
    std::vector<float> send(count), recv(count);
    std::vector<int64_t> cnt(P, per), disp = comm::displacements(cnt);
    for (int j = 0; j < P; ++j)
      for (int64_t i = 0; i < per; ++i) send[j * per + i] = float((r * 131 + j * 7 + i) % 8191);
    double t = timed(w, a.warmup, a.iters, [&] {
      w.all_to_all_v(send.data(), cnt, disp, recv.data(), cnt, disp, DType::F32);
    });
    int64_t wrong = 0;
    for (int s = 0; s < P; ++s)
      for (int64_t i = 0; i < per; ++i) wrong += recv[s * per + i] != float((s * 131 + r * 7 + i) % 8191);
    wrong = w.sum(wrong);
    const double b = double(count) * 4, algbw = b / t / 1e9;
    if (r == 0)
      std::printf("%14lld %14lld %12.1f %12.3f %12.3f %8lld\n", (long long)(count * 4), (long long)count,
                  1e6 * t, algbw, algbw * (P - 1) / P, (long long)wrong);
  }
}

void dispatcher_table(comm::Communicator& w, const A2aArgs& a) {
  const int P = w.size(), r = w.rank(), K = int(a.top_k);
  const int64_t N = a.width, M = a.experts;
  if (M % P) throw InputError("--experts " + std::to_string(M) + " is not divisible by " + std::to_string(P) + " ranks", true);
  auto be = ops::make_cpu_backend();
  if (r == 0) {
    std::printf("\n# dispatcher: dispatch + combine of routed tokens (width %lld, %lld experts, top-%d, softmax router on random weights)\n",
                (long long)N, (long long)M, K);
    std::printf("# bare = all_to_all_v of the same rows there and back; overhead = dispatcher / bare\n");
    std::printf("%10s %14s %12s %12s %10s %12s %8s\n", "tokens", "bytes/rank", "disp(us)", "bare(us)",
                "overhead", "imbalance", "#wrong");
  }
  for (int64_t n : a.tokens) {
    Tensor x = Tensor::empty({n, N}, DType::F32), wr = Tensor::empty({M, N}, DType::F32);
    rng::Key kx = rng::make_key(uint64_t(r) + 1, "x"), kw = rng::make_key(5, "router");
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng::normal(kx, i, 0);
    for (int64_t i = 0; i < wr.numel(); ++i) wr.data<float>()[i] = 0.1f * rng::normal(kw, i, 0);
    Tensor logits = Tensor::empty({n, M}, DType::F32), gates = logits.clone();
    Tensor idx = Tensor::empty({n, K}, DType::I32), wt = Tensor::empty({n, K}, DType::F32);
    Tensor stats = Tensor::empty({M + 1}, DType::F32), none;
    be->gemm(x, false, wr, true, logits, 1.0, 0.0);
    ops::RouterOptions ro;
    ro.top_k = K;
    be->router_forward(logits, none, ro, gates, idx, wt, stats);
    std::vector<uint8_t> kept(n * K, 1);
    models::Dispatcher d(w, M / P);
    Tensor x_recv, out = Tensor::empty({n, N}, DType::F32);
    double td = timed(w, a.warmup, a.iters, [&] {
      d.plan(idx.data<int32_t>(), kept.data(), n, K);
      d.dispatch(*be, x, x_recv);
      d.combine(*be, x_recv, wt, 1.0, out);
    });
    // the same rows through a bare exchange, pre-packed
    const auto& pl = d.current();
    std::vector<int64_t> sc(P), rc(P);
    for (int j = 0; j < P; ++j) {
      sc[j] = pl.send_rows[j] * N;
      rc[j] = pl.recv_rows[j] * N;
    }
    std::vector<float> sbuf(pl.m_send * N), rbuf(pl.m_recv * N);
    auto sd = comm::displacements(sc), rd = comm::displacements(rc);
    double tb = timed(w, a.warmup, a.iters, [&] {
      w.all_to_all_v(sbuf.data(), sc, sd, rbuf.data(), rc, rd, DType::F32);
      w.all_to_all_v(rbuf.data(), rc, rd, sbuf.data(), sc, sd, DType::F32);
    });
    int64_t wrong = 0;
    for (int64_t t = 0; t < n; ++t) {
      float ws = 0;
      for (int k = 0; k < K; ++k) ws += wt.data<float>()[t * K + k];
      for (int64_t j = 0; j < N; ++j) {
        float want = x.data<float>()[t * N + j] * ws, got = out.data<float>()[t * N + j];
        wrong += std::abs(got - want) > 1e-5f * (1 + std::abs(want));
      }
    }
    wrong = w.sum(wrong);
    int64_t rows = pl.m_recv;
    double mx = double(w.max(rows)), mean = double(w.sum(rows)) / P;
    if (r == 0)
      std::printf("%10lld %14lld %12.1f %12.1f %10.3f %12.3f %8lld\n", (long long)n,
                  (long long)(pl.m_send * N * 4), 1e6 * td, 1e6 * tb, td / tb, mean > 0 ? mx / mean : 0.0,
                  (long long)wrong);
  }
}

}  // namespace

void add_bench_a2a(CLI::App& bench, std::vector<Command>& cmds) {
  auto a = std::make_shared<A2aArgs>();
  CLI::App* sub = bench.add_subcommand("a2a", "all-to-all-v and dispatcher benchmark (run under mpirun)");
  sub->add_option("--minbytes", a->minbytes, "smallest message per rank (K, M, G suffixes)");
  sub->add_option("--maxbytes", a->maxbytes, "largest message per rank");
  sub->add_option("--stepfactor", a->stepfactor, "size multiplier between rows")->check(CLI::Range(1.01, 1e6));
  sub->add_option("--iters", a->iters, "timed iterations")->check(CLI::PositiveNumber);
  sub->add_option("--warmup_iters", a->warmup, "untimed iterations")->check(CLI::NonNegativeNumber);
  sub->add_option("--tokens", a->tokens, "tokens per rank for the dispatcher table (comma-separated)")->delimiter(',');
  sub->add_option("--width", a->width, "token width N")->check(CLI::PositiveNumber);
  sub->add_option("--experts", a->experts, "experts M")->check(CLI::PositiveNumber);
  sub->add_option("--top-k", a->top_k, "active experts K")->check(CLI::PositiveNumber);
  cmds.push_back({sub, [a] {
                    raw_table(world(), *a);
                    dispatcher_table(world(), *a);
                    return 0;
                  }});
}

}  // namespace moe::launch
