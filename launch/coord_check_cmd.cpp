// moe coord-check: not yet implemented (see the issues).
#include "launch/commands.h"

namespace moe::launch {

void add_coord_check(CLI::App& app, std::vector<Command>& cmds) {
  CLI::App* sub = app.add_subcommand("coord-check", "(not yet available)");
  cmds.push_back({sub, [] {
                    if (world().rank() == 0) std::fprintf(stderr, "moe coord-check: not yet available\n");
                    return 1;
                  }});
}

}  // namespace moe::launch
