// moe param-table: not yet implemented (see the issues).
#include "launch/commands.h"

namespace moe::launch {

void add_param_table(CLI::App& app, std::vector<Command>& cmds) {
  CLI::App* sub = app.add_subcommand("param-table", "(not yet available)");
  cmds.push_back({sub, [] {
                    if (world().rank() == 0) std::fprintf(stderr, "moe param-table: not yet available\n");
                    return 1;
                  }});
}

}  // namespace moe::launch
