// Running a sweep's runs: one after another (or a few at a time) on this machine, or as one
// Slurm job array. Both skip runs that are already finished, so a sweep can be resumed by
// running the same command again.
#pragma once
#include <string>

#include "src/train/sweep.h"

namespace moe::launch {

struct LocalOutcome {
  int ran = 0, skipped = 0, failed = 0, interrupted = 0;
  int stopped_by = 0;    // the signal that stopped the sweep, 0 when none did
  int not_started = 0;   // runs left for the next sweep
};

// Runs every unfinished run as `moe train --config <run>/run.toml --resume auto`, under
// `<local.mpirun> -np R` when R > 1, `jobs` at a time, holding <sweep>/sweep.lock; a failed run
// is recorded (its "failed" marker and train.log) and the sweep goes on. SIGTERM, SIGINT and
// SIGUSR1 stop it: running runs are signalled and waited for (they checkpoint: "interrupted"),
// nothing new starts, and running the sweep again continues them.
LocalOutcome run_local(const train::Sweep& s, int jobs);

struct SlurmOptions {
  bool wait = false;     // sbatch --wait: return when every array task has ended
  bool prepare = false;  // write the script and submit.sh, print the command, submit nothing
};

// Writes <sweep>/sweep_array.sbatch and <sweep>/submit.sh and submits ONE job array with a task
// per unfinished run (task id = the run's index). Returns false when nothing had to be
// submitted. Throws moe::Error when sbatch gives no job id.
bool submit_slurm(const train::Sweep& s, const SlurmOptions& opt);

}  // namespace moe::launch
