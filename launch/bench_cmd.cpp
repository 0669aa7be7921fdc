// moe bench: groups the benchmark subcommands.
#include "launch/bench.h"

namespace moe::launch {

void add_bench(CLI::App& app, std::vector<Command>& cmds) {
  CLI::App* bench = app.add_subcommand("bench", "benchmarks: step (training step vs PyTorch), a2a (all-to-all, dispatcher), gemm (grouped vs dense expert GEMMs), attention (our fused attention vs cuDNN's, CUDA)");
  bench->require_subcommand(1);
  add_bench_step(*bench, cmds);
  add_bench_a2a(*bench, cmds);
  add_bench_gemm(*bench, cmds);
  add_bench_attention(*bench, cmds);
}

}  // namespace moe::launch
