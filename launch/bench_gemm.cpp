// moe bench gemm: the expert GEMMs at the shapes of configs A and B on uneven expert loads,
// grouped (the backend's grouped_gemm_*) against one dense GEMM of the same FLOPs, with #wrong
// counted against the same products done segment by segment as dense GEMMs. On the CPU it runs
// the same table (CPU grouped against CPU dense), so CI smoke-tests it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

#include "comm/agree.h"
#ifdef MOE_HAVE_CUDA
#include "src/ops/cuda/cuda_backend.h"
#endif
#include "src/ops/cuda/grouped_gemm_route.h"  // the modes and paths; no CUDA header
#include "launch/bench.h"
#include "src/metrics/json.h"

namespace moe::launch {
namespace {

struct GemmArgs {
  std::vector<std::string> configs;  // default: configs/bench_a.toml and bench_b.toml
  std::string device;                // cpu | cuda; default: the config's when usable, else cpu
  std::string dtype;                 // f32 | bf16; default: the config's train.dtype
  int64_t tokens = 0;                // rows per step before top-K; 0 = the config's B * T
  int iters = 10, warmup = 2;
  std::string json;
};

// The four expert products of one layer, as (name, op, in, out).
struct Shape3 {
  const char* name;
  char op;  // 'f' forward x W^T (nt), 'd' data grad dy W (nn), 'w' weight grad dy^T x (tn)
  int64_t in, out;
};

// Expert loads spread evenly from mean/2 to 3 mean/2 (what routing gives, docs/gpu-machine.md),
// in a fixed shuffled order, summing to rows.
std::vector<int64_t> uneven_loads(int64_t rows, int64_t E) {
  std::vector<int64_t> c(static_cast<size_t>(E));
  const double mean = double(rows) / double(E);
  int64_t sum = 0;
  for (int64_t e = 0; e < E; ++e) {
    const double f = E > 1 ? 0.5 + double(e) / double(E - 1) : 1.0;
    c[size_t(e)] = int64_t(std::llround(mean * f));
    sum += c[size_t(e)];
  }
  c[size_t(E / 2)] += rows - sum;  // rounding leftovers to a middle expert
  for (int64_t e = 0; e < E; ++e) std::swap(c[size_t(e)], c[size_t((e * 7 + 3) % E)]);
  return c;
}

// Elements of got that differ from want by more than a bf16-sized tolerance: 1e-2 of the
// element plus 1e-2 of want's rms (accumulation order differs between the two paths).
int64_t count_wrong(const Tensor& got_dev, const Tensor& want_dev) {
  const Tensor got = host_f32(got_dev), want = host_f32(want_dev);
  const float* a = got.data<float>();
  const float* b = want.data<float>();
  double ss = 0;
  for (int64_t i = 0; i < want.numel(); ++i) ss += double(b[i]) * b[i];
  const double rms = want.numel() ? std::sqrt(ss / double(want.numel())) : 0;
  int64_t wrong = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    if (!(std::abs(double(a[i]) - b[i]) <= 1e-2 * std::abs(double(b[i])) + 1e-2 * rms)) ++wrong;
  return wrong;
}

// A measurement that may fail (a path the backend refuses, a cuBLAS or CUDA error): its
// TFLOP/s, or NaN and the error's text, printed as n/a with the reason in the row.
struct Measure {
  double tflops = std::nan("");
  std::string error;
};

struct Row {
  std::string config, shape;
  int64_t E, rows, in, out;
  std::string impl;  // the path(s) the backend's default (Auto) ran
  Measure grouped;   // that path
  Measure cublas;    // cuBLAS's grouped call, timed when the default ran another path
  Measure dense;
  bool has_cublas = false;
  int64_t wrong = 0;  // over every grouped path timed
};

// Runs `fn` (a grouped call) in the backend's mode `mode` (CUDA only; the CPU has one path):
// once against the reference (after `reset`), then timed. Names the path(s) that ran; an error
// leaves the measure NaN with its text.
struct Timed {
  Measure m;
  int64_t wrong = 0;
  std::string impl;
};
using ops::gpu::GroupedGemmMode;
Timed time_grouped(ops::Backend& be, GroupedGemmMode mode, double flops,
                   const std::function<void()>& reset, const std::function<void()>& fn,
                   const Tensor& got, const Tensor& want, const GemmArgs& a) {
  Timed t;
  t.impl = be.name();
#ifdef MOE_HAVE_CUDA
  ops::gpu::CudaBackend* g = dynamic_cast<ops::gpu::CudaBackend*>(&be);
  ops::gpu::GroupedModeScope scope(be, mode);
  int64_t before[ops::gpu::kGroupedPaths] = {};
  for (int p = 0; p < ops::gpu::kGroupedPaths; ++p)
    if (g) before[p] = g->grouped_path_calls(ops::gpu::GroupedPath(p));
#else
  (void)mode;
#endif
  try {
    reset();
    fn();
    t.wrong = count_wrong(got, want);
    t.m.tflops = flops / seconds_of(be, a.warmup, a.iters, fn) / 1e12;
  } catch (const Error& e) {
    t.m.error = e.what();
  }
#ifdef MOE_HAVE_CUDA
  if (g) {
    t.impl.clear();
    for (int p = 0; p < ops::gpu::kGroupedPaths; ++p)
      if (g->grouped_path_calls(ops::gpu::GroupedPath(p)) > before[p])
        t.impl += (t.impl.empty() ? "" : "+") +
                  std::string(ops::gpu::grouped_path_name(ops::gpu::GroupedPath(p)));
    if (t.impl.empty()) t.impl = "-";
  }
#endif
  return t;
}

Measure time_dense(ops::Backend& be, double flops, const std::function<void()>& fn,
                   const GemmArgs& a) {
  Measure m;
  try {
    m.tflops = flops / seconds_of(be, a.warmup, a.iters, fn) / 1e12;
  } catch (const Error& e) {
    m.error = e.what();
  }
  return m;
}

Row run_shape(ops::Backend& be, const std::string& cname, const Shape3& s, int64_t E, int64_t rows,
              DType dt, const GemmArgs& a) {
  const Device dev = be.device();
  const std::vector<int64_t> loads = uneven_loads(rows, E);
  std::vector<ops::Segment> segs;
  int64_t begin = 0;
  for (int64_t e = 0; e < E; ++e) {
    segs.push_back({begin, begin + loads[size_t(e)], int(e)});
    begin += loads[size_t(e)];
  }
  const rng::Key key = rng::make_key(5, std::string("bench gemm ") + s.name);
  auto rnd = [&](const Shape& shape, double sd, uint32_t stream) {
    Tensor t = Tensor::empty(shape, dt, dev);
    if (t.numel()) be.init_normal(t, key, t.numel(), {stream}, sd);
    return t;
  };
  // Operands: A rows (rows x k), the stacked weights W (E, out, in) and the result.
  const double flops = 2.0 * double(rows) * double(s.in) * double(s.out);
  Tensor w = rnd({E, s.out, s.in}, 1.0 / std::sqrt(double(s.in)), 1);
  Tensor grouped, reference, dense_out;
  std::function<void()> grouped_fn, dense_fn, reset = [] {};
  Tensor x, dy;
  // The reference: out[seg] = a[seg] op(W[g]) as one dense GEMM per expert segment.
  auto per_expert = [&](const Tensor& a_rows, bool trans_w, Tensor& out) {
    for (const ops::Segment& g : segs) {
      if (g.end == g.begin) continue;
      Tensor os = out.rows(g.begin, g.end);
      be.gemm(a_rows.rows(g.begin, g.end), false,
              w.view({E * s.out, s.in}).rows(g.group * s.out, (g.group + 1) * s.out), trans_w, os,
              1.0, 0.0);
    }
  };
  if (s.op == 'f') {
    x = rnd({rows, s.in}, 1.0, 2);
    grouped = Tensor::empty({rows, s.out}, dt, dev);
    reference = Tensor::empty({rows, s.out}, dt, dev);
    dense_out = Tensor::empty({rows, s.out}, dt, dev);
    Tensor w0 = w.view({E * s.out, s.in}).rows(0, s.out);
    grouped_fn = [&] { be.grouped_gemm_nt(x, w, segs, grouped, 1.0); };
    dense_fn = [&, w0] { be.gemm(x, false, w0, true, dense_out, 1.0, 0.0); };
    per_expert(x, true, reference);
  } else if (s.op == 'd') {
    dy = rnd({rows, s.out}, 1.0, 3);
    grouped = Tensor::empty({rows, s.in}, dt, dev);
    reference = Tensor::empty({rows, s.in}, dt, dev);
    dense_out = Tensor::empty({rows, s.in}, dt, dev);
    Tensor w0 = w.view({E * s.out, s.in}).rows(0, s.out);
    grouped_fn = [&] { be.grouped_gemm_nn(dy, w, segs, grouped, 1.0, 0.0); };
    dense_fn = [&, w0] { be.gemm(dy, false, w0, false, dense_out, 1.0, 0.0); };
    per_expert(dy, false, reference);
  } else {  // weight gradient into f32 (mixed precision writes f32 gradients)
    dy = rnd({rows, s.out}, 1.0, 3);
    x = rnd({rows, s.in}, 1.0, 2);
    grouped = Tensor::zeros({E, s.out, s.in}, DType::F32, dev);
    reference = Tensor::zeros({E, s.out, s.in}, DType::F32, dev);
    dense_out = Tensor::zeros({s.out, s.in}, DType::F32, dev);
    for (const ops::Segment& g : segs) {
      if (g.end == g.begin) continue;
      Tensor dws = reference.view({E * s.out, s.in}).rows(g.group * s.out, (g.group + 1) * s.out);
      be.gemm(dy.rows(g.begin, g.end), true, x.rows(g.begin, g.end), false, dws, 1.0, 1.0);
    }
    // The grouped call adds into dW: compare after exactly one call from zeros, then time.
    reset = [&] { be.fill(grouped, 0.0); };
    grouped_fn = [&] { be.grouped_gemm_tn(dy, x, segs, grouped, 1.0); };
    dense_fn = [&] { be.gemm(dy, true, x, false, dense_out, 1.0, 1.0); };
  }
  // The default path (Auto: CUTLASS where it applies), and cuBLAS's grouped call as the
  // baseline when the default ran another path (CUTLASS, or the loop for types the grouped call
  // does not take, which then shows as n/a with the reason).
  Row r{cname, s.name, E, rows, s.in, s.out};
  const Timed main = time_grouped(be, GroupedGemmMode::Auto, flops, reset, grouped_fn, grouped,
                                  reference, a);
  r.impl = main.impl;
  r.grouped = main.m;
  r.wrong = main.wrong;
  r.has_cublas = be.device() == Device::CUDA && main.impl != "cublas-grouped";
  if (r.has_cublas) {
    const Timed cub = time_grouped(be, GroupedGemmMode::Grouped, flops, reset, grouped_fn, grouped,
                                   reference, a);
    r.cublas = cub.m;
    r.wrong += cub.wrong;
  }
  r.dense = time_dense(be, flops, dense_fn, a);
  return r;
}

// A table cell: the number, or n/a where a measure failed.
std::string cell(double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

// Why the row's n/a cells are n/a, "" when none is.
std::string notes(const Row& r) {
  std::string n;
  auto add = [&](const char* what, const Measure& m) {
    if (!m.error.empty()) n += (n.empty() ? "" : "; ") + std::string(what) + ": " + m.error;
  };
  add("grouped", r.grouped);
  add("cublas", r.cublas);
  add("dense", r.dense);
  return n;
}

// The nccl-tests-style table on stdout. Returns false when #wrong is not 0 or the default path
// or the dense GEMM failed (the cuBLAS baseline may be n/a: a type pair cuBLAS refuses).
bool print_table(const std::vector<Row>& rows, const std::string& device_used, const std::string& dtype_used,
                 const GemmArgs& a) {
  std::printf("# bench gemm: %s, %s operands, f32 accumulation%s; uneven expert loads (mean/2 .. 3 mean/2); "
              "%d iters after %d warm-up\n",
              device_used.c_str(), dtype_used.c_str(),
              device_used == "cpu" && dtype_used == "bf16" ? " (CPU: stored bf16, computed in f32)" : "",
              a.iters, a.warmup);
  std::printf("# grouped = the backend's default path (impl: cutlass = CUTLASS's Hopper grouped GEMM, "
              "cublas-grouped = cublasGemmGroupedBatchedEx, cublas-loop = one cublasGemmEx per expert, "
              "cpu); cublas = cuBLAS's grouped call on the same problems, timed when the default ran another path\n");
  std::printf("# dense = one GEMM of the same FLOPs; ratio = grouped / dense; #wrong against the same products "
              "as per-expert dense GEMMs; n/a = that path failed or was refused, the reason after #wrong\n");
  std::printf("%-16s %-9s %5s %8s %6s %6s %14s %14s %13s %13s %7s %8s\n", "config", "shape", "E", "rows", "in",
              "out", "impl", "grouped(TF/s)", "cublas(TF/s)", "dense(TF/s)", "ratio", "#wrong");
  int64_t wrong = 0;
  bool failed = false;
  for (const Row& r : rows) {
    const std::string note = notes(r);
    std::printf("%-16s %-9s %5lld %8lld %6lld %6lld %14s %14s %13s %13s %7s %8lld%s%s\n", r.config.c_str(),
                r.shape.c_str(), (long long)r.E, (long long)r.rows, (long long)r.in, (long long)r.out,
                r.impl.c_str(), cell(r.grouped.tflops).c_str(),
                r.has_cublas ? cell(r.cublas.tflops).c_str() : "-", cell(r.dense.tflops).c_str(),
                cell(r.grouped.tflops / r.dense.tflops).c_str(), (long long)r.wrong,
                note.empty() ? "" : "  ", note.c_str());
    wrong += r.wrong;
    failed = failed || !r.grouped.error.empty() || !r.dense.error.empty();
  }
  return wrong == 0 && !failed;
}

// The rows as JSON (--json).
std::string rows_json(const std::vector<Row>& rows, const std::string& device_used, const std::string& dtype_used,
                      const GemmArgs& a) {
  metrics::Json j;
  j.begin_object().kv("device", device_used).kv("dtype", dtype_used).kv("iters", a.iters);
  j.key("rows").begin_array();
  for (const Row& r : rows) {
    j.begin_object().kv("config", r.config).kv("shape", r.shape).kv("E", r.E).kv("rows", r.rows);
    j.kv("in", r.in).kv("out", r.out).kv("impl", r.impl);
    auto measure = [&](const char* key, const Measure& m) {
      if (std::isfinite(m.tflops)) j.kv(key, m.tflops);
      if (!m.error.empty()) j.kv(std::string(key) + "_error", m.error);
    };
    measure("grouped_tflops", r.grouped);
    if (r.has_cublas) measure("cublas_grouped_tflops", r.cublas);
    measure("dense_tflops", r.dense);
    if (std::isfinite(r.grouped.tflops / r.dense.tflops)) j.kv("ratio", r.grouped.tflops / r.dense.tflops);
    j.kv("wrong", r.wrong).end_object();
  }
  j.end_array().end_object();
  return j.str() + "\n";
}

int run_gemm(const GemmArgs& a) {
  comm::Communicator& w = world();
  check_output_agreed(a.json);  // before the benchmarks run
  std::vector<std::string> paths = a.configs;
  if (paths.empty())
    paths = {std::string(MOE_SOURCE_DIR) + "/configs/bench_a.toml",
             std::string(MOE_SOURCE_DIR) + "/configs/bench_b.toml"};
  std::vector<Row> rows;
  std::string device_used, dtype_used;
  for (const std::string& path : paths) {
    config::Config cfg = load_config_agreed(path, {}, 0);
    if (!a.device.empty()) cfg.parallel.device = a.device;
    if (cfg.parallel.device == "cuda" && ops::cuda_device_count() == 0 && a.device.empty())
      cfg.parallel.device = "cpu";  // the config asks for a GPU this machine lacks: say so below
    if (!a.dtype.empty()) cfg.train.dtype = a.dtype;
    std::unique_ptr<ops::Backend> be;
    comm::run_agreed(w, [&] { be = make_backend(cfg); });
    const DType dt = cfg.train.dtype == "bf16" ? DType::BF16 : DType::F32;
    device_used = be->name();
    dtype_used = dtype_name(dt);
    const int64_t E = cfg.moe.experts / std::max<int64_t>(1, cfg.parallel.ep);
    const int64_t tokens = a.tokens > 0 ? a.tokens : cfg.train.batch * cfg.model.seq_len;
    const int64_t R = tokens * cfg.moe.top_k;  // routed rows, all on this rank's experts
    const int64_t N = cfg.model.width, F = cfg.moe.expert_width;
    std::string cname = path.substr(path.find_last_of('/') + 1);
    const Shape3 shapes[] = {{"up fwd", 'f', N, F}, {"down fwd", 'f', F, N}, {"up dgrad", 'd', N, F},
                             {"up wgrad", 'w', N, F}};
    for (const Shape3& s : shapes) {
      try {
        rows.push_back(run_shape(*be, cname, s, E, R, dt, a));
      } catch (const Error& e) {  // the operands or the reference failed: the row says so
        Row r{cname, s.name, E, R, s.in, s.out, "-"};
        r.grouped.error = e.what();
        rows.push_back(r);
      }
    }
  }
  const bool ok = w.rank() == 0 ? print_table(rows, device_used, dtype_used, a) : true;
  write_output_agreed(a.json, a.json.empty() ? "" : rows_json(rows, device_used, dtype_used, a));
  return ok ? 0 : 1;
}

}  // namespace

void add_bench_gemm(CLI::App& bench, std::vector<Command>& cmds) {
  auto a = std::make_shared<GemmArgs>();
  CLI::App* sub = bench.add_subcommand("gemm", "expert grouped GEMMs against dense GEMMs of the same FLOPs");
  sub->add_option("--config", a->configs, "config(s) whose shapes to run (default: configs/bench_a.toml, bench_b.toml)");
  sub->add_option("--device", a->device, "cpu | cuda (default: the config's, cpu when no GPU is usable)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--dtype", a->dtype, "f32 | bf16 (default: the config's train.dtype)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  sub->add_option("--tokens", a->tokens, "tokens per step before top-K (default: the config's B * T)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--iters", a->iters, "timed calls")->check(CLI::PositiveNumber);
  sub->add_option("--warmup", a->warmup, "untimed calls first")->check(CLI::NonNegativeNumber);
  sub->add_option("--json", a->json, "also write the rows to this JSON file");
  cmds.push_back({sub, [a] { return run_gemm(*a); }});
}

}  // namespace moe::launch
