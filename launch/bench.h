// The `moe bench` subcommands (each in its own file).
#pragma once
#include <chrono>
#include <functional>

#include "launch/commands.h"
#include "src/ops/backend.h"

namespace moe::launch {
void add_bench_step(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_a2a(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_gemm(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_attention(CLI::App& bench, std::vector<Command>& cmds);

// Seconds per call of fn: `warmup` untimed calls, then `iters` timed ones between two waits for
// the backend (so that queued device work is inside the interval).
inline double seconds_of(ops::Backend& be, int warmup, int iters, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  be.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

// Any floating-point tensor as f32 on the host (bf16 widened exactly), for the benchmarks' checks.
inline Tensor host_f32(const Tensor& t) {
  Tensor h = t.to(Device::CPU), f = Tensor::empty(t.shape(), DType::F32);
  ops::make_cpu_backend()->cast(h, f);
  return f;
}
}  // namespace moe::launch
