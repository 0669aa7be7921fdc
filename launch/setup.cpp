// Helpers shared by the subcommands: agreed config loading, backend selection, output files.
#include <mpi.h>

#include <cstdlib>

#include "comm/agree.h"
#include "comm/nccl.h"
#include "launch/commands.h"
#include "launch/default_config.h"
#include "src/core/output_file.h"

namespace moe::launch {

const char* default_config_text() { return kDefaultConfig; }

config::Config load_config_agreed(const std::string& path, const std::vector<std::string>& sets,
                                  int world_size) {
  config::Config cfg;
  comm::run_agreed(world(), [&] {
    cfg = path.empty() ? config::parse_config(kDefaultConfig, "<built-in default config>", sets, world_size)
                       : config::load_config(path, sets, world_size);
  });
  return cfg;
}

std::unique_ptr<ops::Backend> make_backend(const config::Config& cfg) {
  if (cfg.parallel.device == "cpu") return ops::make_cpu_backend();
  int count = ops::cuda_device_count();
  if (count == 0) throw InputError("parallel.device = \"cuda\" but no CUDA device is usable here", true);
  const char* lr = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (!lr) lr = std::getenv("SLURM_LOCALID");
  int local = lr ? std::atoi(lr) : 0;
  return ops::make_cuda_backend(local % count);
}

std::unique_ptr<comm::Communicator> make_model_world(const config::Config& cfg, ops::Backend& backend) {
  comm::Communicator& w = world();
  if (cfg.parallel.backend != "nccl") return w.split(0, w.rank());
  comm::NcclOptions opt;
  if (cfg.parallel.timeout_s > 0) opt.timeout_s = cfg.parallel.timeout_s;
  std::unique_ptr<comm::Communicator> out;
  comm::run_agreed(w, [&] { out = comm::make_nccl_communicator(MPI_COMM_WORLD, backend, opt); });
  return out;
}

int ranks_on_node() {
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
      MPI_SUCCESS)
    return 1;
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

void set_collective_timeout(const config::Config& cfg) { world().set_timeout(cfg.parallel.timeout_s); }

void check_output_agreed(const std::string& path) {
  comm::run_agreed(world(), [&] {
    if (!path.empty() && world().rank() == 0) check_output_path(path);
  });
}

void write_output_agreed(const std::string& path, const std::string& text) {
  comm::run_agreed(world(), [&] {
    if (!path.empty() && world().rank() == 0) write_output_atomically(path, text);
  });
}

}  // namespace moe::launch
