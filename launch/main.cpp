// moe: the trainer's single executable. Subcommands: train, eval, param-table, coord-check,
// sweep, bench, export. Exit codes (README): 0 success, 1 internal error, 2 bad input (config,
// data, checkpoint), 3 non-finite, 4 collective timeout, 5 stopped by a signal with a checkpoint;
// an error stops every rank.
#include <mpi.h>

#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "comm/agree.h"
#include "comm/mpi_communicator.h"
#include "launch/commands.h"
#include "launch/process.h"
#include "src/core/error.h"
#include "src/run/stop_signals.h"

namespace moe::launch {
namespace {
std::unique_ptr<comm::MpiCommunicator> g_world;  // owned by main for the process lifetime
}
comm::Communicator& world() { return *g_world; }
}  // namespace moe::launch

int main(int argc, char** argv) {
  using namespace moe;
  if (argc > 1 && std::strcmp(argv[1], launch::kParentDeathExec) == 0) launch::exec_with_parent_death(argc, argv);
  // `moe train` catches its stop signals before MPI starts: a scheduler's signal that arrives
  // while the job is still starting must not kill it (the run decides once it has its config).
  if (argc > 1 && std::strcmp(argv[1], "train") == 0) run::catch_stop_signals({SIGTERM, SIGINT, SIGUSR1});
  comm::mpi_init(&argc, &argv);
  launch::g_world = std::make_unique<comm::MpiCommunicator>(MPI_COMM_WORLD);
  const int rank = launch::g_world->rank();

  CLI::App app{"moe: an expert-parallel Mixture-of-Experts trainer"};
  app.require_subcommand(1);
  std::vector<launch::Command> cmds;
  launch::add_train(app, cmds);
  launch::add_eval(app, cmds);
  launch::add_param_table(app, cmds);
  launch::add_coord_check(app, cmds);
  launch::add_sweep(app, cmds);
  launch::add_bench(app, cmds);
  launch::add_export(app, cmds);

  int code = 0;
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      // Every rank parses the same arguments: rank 0 speaks, all leave with the same code.
      // --help and --version are "errors" with code 0 that CLI11 prints itself; a real error is
      // one line in the format of every other bad input.
      int rc = e.get_exit_code();
      if (rank == 0) {
        if (rc == 0)
          app.exit(e);
        else
          comm::print_error(std::string(e.what()) + " (moe --help lists the commands and options)");
      }
      launch::g_world.reset();
      comm::mpi_finalize();
      return rc == 0 ? 0 : kExitBadInput;
    }
    for (launch::Command& c : cmds)
      if (c.app->parsed()) code = c.run();
  } catch (const comm::AgreedFailure& e) {
    code = e.exit_code();  // already printed; every rank is here
  } catch (const Error& e) {
    comm::print_error(std::string("[rank ") + std::to_string(rank) + "] " + e.what());
    MPI_Abort(MPI_COMM_WORLD, e.exit_code());
  } catch (const std::exception& e) {
    comm::print_error(std::string("[rank ") + std::to_string(rank) + "] " + e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitInternal);
  }
  launch::g_world.reset();
  comm::mpi_finalize();
  return code;
}
