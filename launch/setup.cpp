// Helpers shared by the subcommands: agreed config loading and backend selection.
#include <cstdlib>

#include "comm/agree.h"
#include "launch/commands.h"
#include "launch/default_config.h"

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

}  // namespace moe::launch
