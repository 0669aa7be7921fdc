// Subcommands not yet written (removed as each lands).
#include "launch/commands.h"
namespace moe::launch {
void add_eval(CLI::App&, std::vector<Command>&) {}
void add_param_table(CLI::App&, std::vector<Command>&) {}
void add_coord_check(CLI::App&, std::vector<Command>&) {}
void add_sweep(CLI::App&, std::vector<Command>&) {}
void add_export(CLI::App&, std::vector<Command>&) {}
}
