// moe bench attention: the CUDA backend's fused causal attention, our own kernels
// (flash_attention.cu) against cuDNN's SDPA (src/ops/cuda/cudnn/), forward and backward at each
// shape (B, T, H, D), in bf16 (the only dtype the cuDNN path takes): ms and TFLOP/s of each and
// the largest |difference| between their results (out forward, dqkv backward), checked on every
// run against the tolerances of tests/cuda/cudnn_attention_test.cpp (normalized error 2e-2 for
// out, 4e-2 for dqkv: the two are within half of that of the CPU each). FLOPs: the causal half
// of the 2 (forward) and 5 (backward, with the recomputed scores) T x T x D products per head,
// FlashAttention's count. Without cuDNN (not built, not loadable, or no engine for a shape) the
// cuDNN columns say "-". Needs a CUDA device: elsewhere it says so in one line and exits 2.
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>

#include "comm/agree.h"
#include "launch/bench.h"
#include "src/metrics/json.h"
#ifdef MOE_HAVE_CUDA
#include "src/ops/cuda/cuda_backend.h"
#endif

namespace moe::launch {
namespace {

struct AttentionArgs {
  std::vector<std::string> shapes;  // "B,T,H,D"; default: configs A and B, and a long sequence
  std::string device = "cuda";
  int iters = 10, warmup = 2;
  std::string json;
};

struct Dims {
  int B, T, H, D;
};

Dims parse_dims(const std::string& s) {
  Dims d{};
  char c1 = 0, c2 = 0, c3 = 0;
  std::istringstream in(s);
  in >> d.B >> c1 >> d.T >> c2 >> d.H >> c3 >> d.D;
  if (!in || !in.eof() || c1 != ',' || c2 != ',' || c3 != ',' || d.B <= 0 || d.T <= 0 ||
      d.H <= 0 || d.D <= 0)
    throw InputError("--shape wants B,T,H,D (positive integers), got \"" + s + "\"");
  if (d.D > 128)
    throw InputError("--shape " + s +
                     ": heads above D = 128 are not fused (our kernels stop at 128)");
  return d;
}

#ifdef MOE_HAVE_CUDA
using ops::gpu::AttentionImpl;
using ops::gpu::CudaBackend;

// Largest |a - b| and the normalized error |a - b|_2 / |b|_2.
std::pair<double, double> compare(const Tensor& a_dev, const Tensor& b_dev) {
  Tensor a = host_f32(a_dev), b = host_f32(b_dev);
  double mx = 0, num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    mx = std::max(mx, std::abs(x - y));
    num += (x - y) * (x - y);
    den += y * y;
    if (!std::isfinite(x)) mx = num = INFINITY;
  }
  return {mx, den > 0 ? std::sqrt(num / den) : std::sqrt(num)};
}

struct Row {
  Dims d;
  const char* dir;
  double own_s, cudnn_s = 0;  // cudnn_s 0: cuDNN did not run
  double flops, max_diff = 0;
  bool ok = true;
};

// Forward and backward rows of one shape.
void run_shape(CudaBackend& be, const Dims& d, const AttentionArgs& a, std::vector<Row>& rows) {
  const int64_t N = int64_t(d.H) * d.D, n = int64_t(d.B) * d.T;
  const double scale = 1.0 / std::sqrt(double(d.D));
  const rng::Key key = rng::make_key(6, "bench attention");
  Tensor qkv = Tensor::empty({n, 3 * N}, DType::BF16, Device::CUDA);
  Tensor dout = Tensor::empty({n, N}, DType::BF16, Device::CUDA);
  be.init_normal(qkv, key, qkv.numel(), {1}, 1.0);
  be.init_normal(dout, key, dout.numel(), {2}, 1.0);
  struct Side {
    Tensor out, lse, dqkv;
  };
  auto side = [&] {
    return Side{Tensor::empty({n, N}, DType::BF16, Device::CUDA),
                Tensor::empty({d.B, d.H, d.T}, DType::F32, Device::CUDA),
                Tensor::empty({n, 3 * N}, DType::BF16, Device::CUDA)};
  };
  Side own = side(), cud = side();
  auto fwd = [&](Side& s) { be.flash_attention_forward(qkv, s.out, s.lse, d.B, d.T, d.H, scale); };
  auto bwd = [&](Side& s) {
    be.flash_attention_backward(qkv, s.out, s.lse, dout, s.dqkv, d.B, d.T, d.H, scale);
  };
  // B H T^2 D: the causal half of one T x T x D product's 2 T^2 D, for every head.
  const double causal = double(d.B) * d.H * double(d.T) * d.T * d.D;
  Row rf{d, "fwd", 0, 0, 2 * causal}, rb{d, "bwd", 0, 0, 5 * causal};

  be.set_attention_impl(AttentionImpl::Own);
  fwd(own);
  bwd(own);
  rf.own_s = seconds_of(be, a.warmup, a.iters, [&] { fwd(own); });
  rb.own_s = seconds_of(be, a.warmup, a.iters, [&] { bwd(own); });

  // Auto, not Cudnn: a shape cuDNN declines is then a "-", not an error; the backend says
  // which one ran.
  be.set_attention_impl(AttentionImpl::Auto);
  fwd(cud);
  const bool cudnn_fwd = be.last_attention_impl() == AttentionImpl::Cudnn;
  bwd(cud);
  const bool cudnn_bwd = be.last_attention_impl() == AttentionImpl::Cudnn;
  if (cudnn_fwd) {
    auto [mx, err] = compare(cud.out, own.out);
    rf.max_diff = mx;
    rf.ok = err <= 2e-2;
    rf.cudnn_s = seconds_of(be, a.warmup, a.iters, [&] { fwd(cud); });
  }
  if (cudnn_bwd) {
    auto [mx, err] = compare(cud.dqkv, own.dqkv);
    rb.max_diff = mx;
    rb.ok = err <= 4e-2;
    rb.cudnn_s = seconds_of(be, a.warmup, a.iters, [&] { bwd(cud); });
  }
  be.set_attention_impl(AttentionImpl::Auto);
  rows.push_back(rf);
  rows.push_back(rb);
}

// The nccl-tests-style table on stdout; returns whether every checked row agreed.
bool print_table(const std::vector<Row>& rows, bool have_cudnn, const AttentionArgs& a) {
  std::printf("# bench attention: cuda, bf16 causal, f32 accumulation; own kernels vs cuDNN%s; "
              "%d iters after %d warm-up\n",
              have_cudnn ? "" : " (cuDNN unavailable: its columns are -)", a.iters, a.warmup);
  std::printf("# TF/s from the causal FLOPs (fwd 2, bwd 5 B H T^2 D); max|diff| between the two "
              "results (fwd out, bwd dqkv)\n");
  std::printf("%4s %6s %4s %4s %4s %10s %9s %10s %9s %8s %10s %5s\n", "B", "T", "H", "D", "dir",
              "own(ms)", "own(TF/s)", "cudnn(ms)", "cudnn(TF/s)", "speedup", "max|diff|", "check");
  bool all_ok = true;
  for (const Row& r : rows) {
    std::printf("%4d %6d %4d %4d %4s %10.3f %9.2f ", r.d.B, r.d.T, r.d.H, r.d.D, r.dir,
                r.own_s * 1e3, r.flops / r.own_s / 1e12);
    if (r.cudnn_s > 0)
      std::printf("%10.3f %9.2f %8.2f %10.3e %5s\n", r.cudnn_s * 1e3, r.flops / r.cudnn_s / 1e12,
                  r.own_s / r.cudnn_s, r.max_diff, r.ok ? "ok" : "WRONG");
    else
      std::printf("%10s %9s %8s %10s %5s\n", "-", "-", "-", "-", "-");
    all_ok = all_ok && r.ok;
  }
  return all_ok;
}

// The rows as JSON (--json).
std::string rows_json(const std::vector<Row>& rows, bool have_cudnn, const AttentionArgs& a) {
  metrics::Json j;
  j.begin_object().kv("device", std::string("cuda")).kv("dtype", std::string("bf16"));
  j.kv("iters", a.iters).kv("cudnn", have_cudnn);
  j.key("rows").begin_array();
  for (const Row& r : rows) {
    j.begin_object().kv("B", r.d.B).kv("T", r.d.T).kv("H", r.d.H).kv("D", r.d.D);
    j.kv("dir", std::string(r.dir)).kv("own_ms", r.own_s * 1e3);
    j.kv("own_tflops", r.flops / r.own_s / 1e12);
    if (r.cudnn_s > 0) {
      j.kv("cudnn_ms", r.cudnn_s * 1e3).kv("cudnn_tflops", r.flops / r.cudnn_s / 1e12);
      j.kv("max_diff", r.max_diff).kv("ok", r.ok);
    }
    j.end_object();
  }
  j.end_array().end_object();
  return j.str() + "\n";
}

int run_attention(const AttentionArgs& a) {
  comm::Communicator& w = world();
  std::vector<Dims> dims;
  comm::run_agreed(w, [&] {  // a bad --shape: one line and exit 2, as for any bad input
    for (const std::string& s : a.shapes) dims.push_back(parse_dims(s));
  });
  if (dims.empty()) dims = {{16, 1024, 16, 64}, {8, 1024, 16, 128}, {2, 4096, 16, 128}};
  check_output_agreed(a.json);  // before the benchmarks run
  if (a.device != "cuda" || ops::cuda_device_count() == 0) {
    if (w.rank() == 0)
      comm::print_error("bench attention needs a CUDA device (it times our fused attention "
                        "kernels against cuDNN's); none is usable here");
    return kExitBadInput;
  }
  config::Config cfg = load_config_agreed("", {}, 0);
  cfg.parallel.device = "cuda";
  std::unique_ptr<ops::Backend> owner;
  comm::run_agreed(w, [&] { owner = make_backend(cfg); });
  auto& be = static_cast<CudaBackend&>(*owner);
  const bool have_cudnn = be.cudnn_attention_available();
  std::vector<Row> rows;
  for (const Dims& d : dims) run_shape(be, d, a, rows);
  const bool all_ok = w.rank() != 0 || print_table(rows, have_cudnn, a);
  write_output_agreed(a.json, a.json.empty() ? "" : rows_json(rows, have_cudnn, a));
  return all_ok ? 0 : 1;
}
#else
int run_attention(const AttentionArgs& a) {
  comm::run_agreed(world(), [&] {
    for (const std::string& s : a.shapes) parse_dims(s);
  });
  if (world().rank() == 0)
    comm::print_error("bench attention needs a CUDA device (it times our fused attention kernels "
                      "against cuDNN's); this build has no CUDA backend");
  return kExitBadInput;
}
#endif

}  // namespace

void add_bench_attention(CLI::App& bench, std::vector<Command>& cmds) {
  auto a = std::make_shared<AttentionArgs>();
  CLI::App* sub = bench.add_subcommand(
      "attention",
      "fused causal attention: our kernels against cuDNN's, forward and backward (CUDA)");
  sub->add_option("--shape", a->shapes,
                  "B,T,H,D to run (repeatable; default 16,1024,16,64 8,1024,16,128 2,4096,16,128)");
  sub->add_option("--device", a->device, "cuda (a CUDA device is needed)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--iters", a->iters, "timed calls")->check(CLI::PositiveNumber);
  sub->add_option("--warmup", a->warmup, "untimed calls first")->check(CLI::NonNegativeNumber);
  sub->add_option("--json", a->json, "also write the rows to this JSON file");
  cmds.push_back({sub, [a] { return run_attention(*a); }});
}

}  // namespace moe::launch
