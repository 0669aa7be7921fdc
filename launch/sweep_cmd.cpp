// moe sweep: not yet implemented (see the issues).
#include "launch/commands.h"

namespace moe::launch {

void add_sweep(CLI::App& app, std::vector<Command>& cmds) {
  CLI::App* sub = app.add_subcommand("sweep", "(not yet available)");
  cmds.push_back({sub, [] {
                    if (world().rank() == 0) std::fprintf(stderr, "moe sweep: not yet available\n");
                    return 1;
                  }});
}

}  // namespace moe::launch
