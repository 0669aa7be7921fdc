// The launcher's death stops the ranks. Under mpirun or srun a rank's parent is the launcher
// (or its daemon); when it dies the rank is re-parented, and a rank that carried on would write
// metrics and checkpoints nobody asked for into a run directory a new job may already own.
#pragma once

namespace moe {

// Records the parent when this process was started by a launcher (mpirun/prterun's
// OMPI_COMM_WORLD_SIZE, or an srun step) and starts a thread that checks every 100 ms; a
// singleton (no launcher: its parent is the user's shell) is not watched.
void watch_launcher(int rank);
// Checks now; if the launcher is gone, prints one line and exits (code 1) without writing
// anything more. Called before every write to the run directory.
void stop_if_launcher_gone();

}  // namespace moe
