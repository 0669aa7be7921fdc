// moe bench step: times full training steps (forward, backward, optimizer) of a config and,
// in the same run, the same model in PyTorch (bench/torch_moe.py), and prints both with the ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <regex>

#include "comm/agree.h"
#include "launch/bench.h"
#include "src/metrics/flops.h"
#include "src/ops/profiling_backend.h"
#include "src/train/trainer.h"

namespace moe::launch {
namespace {

struct StepArgs {
  std::string config;
  std::vector<std::string> sets;
  int steps = 20, warmup = 3, rounds = 3;
  bool profile = false, torch = true;
  std::string python = "/usr/bin/python3", script;
  double peak_tflops = -1;  // per device; -1: 989 (H100/H200 bf16 dense) for bf16 on CUDA, else none
};

// Runs the PyTorch peer; returns its tokens/s (0 when it could not run) and prints why not.
double run_torch(const StepArgs& a, const config::Config& c, std::string& desc) {
  std::string script = a.script.empty() ? std::string(MOE_SOURCE_DIR) + "/bench/torch_moe.py" : a.script;
  char cmd[2048];
  std::snprintf(cmd, sizeof cmd,
                "%s %s --vocab %lld --seq_len %lld --width %lld --heads %lld --depth %lld --experts %lld "
                "--top_k %lld --expert_width %lld --batch %lld --steps %d --warmup %d --preset %s --lr %g "
                "--device %s --dtype %s%s 2>&1",
                a.python.c_str(), script.c_str(), (long long)c.model.vocab, (long long)c.model.seq_len,
                (long long)c.model.width, (long long)c.model.heads, (long long)c.model.depth,
                (long long)c.moe.experts, (long long)c.moe.top_k, (long long)c.moe.expert_width,
                (long long)c.train.batch, a.steps, a.warmup, c.parameterization.preset.c_str(), c.optim.lr,
                c.parallel.device.c_str(), c.train.dtype.c_str(), c.parallel.device == "cuda" ? " --compile" : "");
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("\"tokens_per_s\": ([0-9.eE+-]+)"))) {
    std::printf("pytorch peer did not run (%s): %s\n", cmd, out.substr(0, 300).c_str());
    return 0;
  }
  std::smatch v;
  desc = std::regex_search(out, v, std::regex("\"torch\": \"([^\"]+)\"")) ? "pytorch " + v[1].str() : "pytorch";
  if (std::regex_search(out, v, std::regex("\"impl\": \"([^\"]+)\""))) desc += " " + v[1].str();
  return std::stod(m[1]);
}

int run_step(const StepArgs& a) {
  comm::Communicator& w = world();
  std::vector<std::string> sets = a.sets;
  sets.push_back("parallel.ep=" + std::to_string(w.size()));
  config::Config cfg = load_config_agreed(a.config, sets, w.size());
  std::unique_ptr<ops::Backend> base;
  comm::run_agreed(w, [&] { base = make_backend(cfg); });
  std::unique_ptr<ops::ProfilingBackend> prof;
  ops::Backend* be = base.get();
  if (a.profile) {
    prof = std::make_unique<ops::ProfilingBackend>(*base);
    be = prof.get();
  }
  auto ctx = comm::make_parallel_context(make_model_world(cfg, *base), int(cfg.parallel.ep), be);
  train::Trainer tr(cfg, ctx, {false, false});
  for (int s = 0; s < a.warmup; ++s) tr.step();
  // Rounds alternate between moe and the peer; each side's best round counts, so a busy
  // machine slows neither side more than the other.
  const bool with_peer = a.torch && w.size() == 1;
  double sec = 1e300, peer = 0;
  std::string peer_desc;
  for (int round = 0; round < a.rounds; ++round) {
    if (prof) prof->reset();
    w.barrier();
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < a.steps; ++s) tr.step();
    w.barrier();
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / a.steps;
    sec = std::min(sec, w.max(t));
    if (with_peer && w.rank() == 0) peer = std::max(peer, run_torch(a, cfg, peer_desc));
  }
  // Host syncs and copies of the step itself: a few more steps with the profiler's own
  // synchronization off (src/core/tensor.h TransferStats).
  TransferStats moved_before, moved_after;
  const int transfer_steps = std::min(a.steps, 3);
  if (prof) {
    prof->set_enabled(false);
    moved_before = transfer_stats();
    for (int s = 0; s < transfer_steps; ++s) tr.step();
    moved_after = transfer_stats();
    prof->set_enabled(true);
  }
  double tokens = double(cfg.train.batch * cfg.model.seq_len);
  if (w.rank() != 0) return 0;
  // The dtypes the model ran with, read from the model itself (not from the config's words).
  const DType compute = tr.model().compute_dtype(), master = tr.model().dtype();
  const std::string dtype_desc =
      compute == master ? std::string(dtype_name(master))
                        : std::string(dtype_name(compute)) + " (mixed: " + dtype_name(master) +
                              " master weights, gradients, optimizer, router, norms, loss)";
  std::printf("# bench step: V=%lld T=%lld N=%lld H=%lld L=%lld Ne=%lld M=%lld K=%lld B=%lld, %s %s, %d rank(s), %d steps after %d warm-up\n",
              (long long)cfg.model.vocab, (long long)cfg.model.seq_len, (long long)cfg.model.width,
              (long long)cfg.model.heads, (long long)cfg.model.depth, (long long)cfg.moe.expert_width,
              (long long)cfg.moe.experts, (long long)cfg.moe.top_k, (long long)cfg.train.batch, be->name(),
              dtype_desc.c_str(), w.size(), a.steps, a.warmup);
  std::printf("# best of %d alternating rounds per side\n", a.rounds);
  double mine = tokens / sec;
  const double fpt = metrics::flops_per_token(cfg);
  // The default peak is the bf16 tensor-core one, so it applies to bf16 GEMMs only.
  const double peak = a.peak_tflops >= 0 ? a.peak_tflops
                      : (be->device() == Device::CUDA && compute == DType::BF16) ? 989.0
                                                                                 : 0.0;
  auto mfu = [&](double tps) {
    if (peak <= 0) return std::string("-");
    char b[32];
    std::snprintf(b, sizeof b, "%.1f%%", 100 * tps * fpt / 1e12 / (peak * w.size()));
    return std::string(b);
  };
  std::printf("model FLOPs per token: %.4g (6 x %.4g active matmul params + 12 L T N)\n", fpt,
              metrics::active_matmul_params(cfg));
  std::printf("%-44s %12s %10s %10s %8s\n", "implementation", "tokens/s", "ms/step", "TFLOP/s", "MFU");
  std::printf("%-44s %12.0f %10.2f %10.3f %8s\n", (std::string("moe (") + be->name() + (be->device() == Device::CUDA ? ")" : ", 1 thread/rank)")).c_str(),
              mine, 1e3 * sec, mine * fpt / 1e12, mfu(mine).c_str());
  if (peer > 0) {
    std::printf("%-44s %12.0f %10.2f %10.3f %8s\n", peer_desc.c_str(), peer,
                1e3 * tokens / peer, peer * fpt / 1e12, mfu(peer).c_str());
    std::printf("speedup over pytorch: %.2fx\n", mine / peer);
  }
  if (prof) {
    std::printf("\nper-op time (rank 0, last round):\n%s", prof->table(sec * a.steps, a.steps).c_str());
    if (be->device() == Device::CUDA) {
      const double st = transfer_steps;
      std::printf("host transfers per step (rank 0, %d unprofiled steps): host syncs %.1f, "
                  "H2D %.0f bytes, D2H %.0f bytes\n",
                  transfer_steps,
                  double(moved_after.host_syncs - moved_before.host_syncs) / st,
                  double(moved_after.h2d_bytes - moved_before.h2d_bytes) / st,
                  double(moved_after.d2h_bytes - moved_before.d2h_bytes) / st);
    } else {
      std::printf("host transfers per step: n/a (CPU backend: no device, nothing crosses)\n");
    }
  }
  return 0;
}

}  // namespace

void add_bench_step(CLI::App& bench, std::vector<Command>& cmds) {
  auto a = std::make_shared<StepArgs>();
  CLI::App* sub = bench.add_subcommand("step", "time training steps, side by side with PyTorch");
  sub->add_option("--config", a->config, "TOML config (default: built-in; config C)");
  sub->add_option("--set", a->sets, "override a key (repeatable)");
  sub->add_option("--steps", a->steps, "timed steps")->check(CLI::PositiveNumber);
  sub->add_option("--warmup", a->warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  sub->add_option("--rounds", a->rounds, "alternating timing rounds (best counts)")->check(CLI::PositiveNumber);
  sub->add_flag("--profile", a->profile, "print time per op");
  sub->add_flag("!--no-torch", a->torch, "skip the PyTorch peer");
  sub->add_option("--python", a->python, "python with torch for the peer");
  sub->add_option("--torch-script", a->script, "the peer script (default: bench/torch_moe.py of the source tree)");
  sub->add_option("--peak-tflops", a->peak_tflops, "per-device peak for MFU (default: 989, the bf16 dense peak, for bf16 on CUDA; else none)");
  cmds.push_back({sub, [a] { return run_step(*a); }});
}

}  // namespace moe::launch
