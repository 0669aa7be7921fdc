// The `moe bench` subcommands (each in its own file).
#pragma once
#include "launch/commands.h"

namespace moe::launch {
void add_bench_step(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_a2a(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_gemm(CLI::App& bench, std::vector<Command>& cmds);
void add_bench_attention(CLI::App& bench, std::vector<Command>& cmds);
}  // namespace moe::launch
