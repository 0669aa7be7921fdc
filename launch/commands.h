// The subcommands of `moe`. Each file in launch/ adds one (its options and what it runs);
// main.cpp parses the command line, runs the chosen one and turns errors into exit codes.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "src/config/config.h"
#include "src/ops/backend.h"

namespace moe::launch {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

void add_train(CLI::App& app, std::vector<Command>& cmds);
void add_eval(CLI::App& app, std::vector<Command>& cmds);
void add_param_table(CLI::App& app, std::vector<Command>& cmds);
void add_coord_check(CLI::App& app, std::vector<Command>& cmds);
void add_bench(CLI::App& app, std::vector<Command>& cmds);
void add_sweep(CLI::App& app, std::vector<Command>& cmds);
void add_export(CLI::App& app, std::vector<Command>& cmds);

// Shared by commands: the MPI world of this process.
comm::Communicator& world();
// Loads a config (path "" = the built-in default) with overrides, on every rank, agreeing on
// failure (see comm/agree.h). world_size = 0 skips the layout checks.
config::Config load_config_agreed(const std::string& path, const std::vector<std::string>& sets,
                                  int world_size);
// The compute backend a config asks for (the CUDA one uses this rank's local GPU).
std::unique_ptr<ops::Backend> make_backend(const config::Config& cfg);
// The communicator the model's groups are split from: NCCL over the world's ranks on the
// backend's device for parallel.backend = "nccl", else a duplicate of the MPI world. Collective.
std::unique_ptr<comm::Communicator> make_model_world(const config::Config& cfg, ops::Backend& backend);
// The built-in default config (configs/default.toml compiled in).
const char* default_config_text();
// Ranks of the world on this node (MPI_COMM_TYPE_SHARED); collective over the world.
int ranks_on_node();
// Applies parallel.timeout_s to the world and everything split from it (comm/watchdog.h).
void set_collective_timeout(const config::Config& cfg);
// A user-named output file (--out, --json; "" = none), written by rank 0 through
// src/core/output_file.h. Collective: a bad path (exit 2) or a failed write (exit 1) stops every
// rank with one line. check_output_agreed runs before a command's expensive work.
void check_output_agreed(const std::string& path);
void write_output_agreed(const std::string& path, const std::string& text);

}  // namespace moe::launch
