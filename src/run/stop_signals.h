// Signals end a training segment normally. SIGTERM (scancel, a Slurm time limit, preemption),
// SIGINT (Ctrl-C) and SIGUSR1 (sbatch --signal=B:USR1@s, forwarded by slurm/train.sbatch) ask
// `moe train` to stop at the next step boundary: every rank agrees on the stop there (one
// reduction per step, src/train/trainer.cpp), writes a complete checkpoint and exits
// kExitStopped, from which `--resume auto` continues. The handler only records the signal.
//
// Two bounds keep a stop from outliving the job: a second signal (one that arrives
// kRepeatSeconds or more after the first: launchers and schedulers deliver one request twice
// within milliseconds) exits at once, and so does a stop still running run.stop_timeout_s after
// the first signal. Either exits 128 + the signal's number, as if the signal had killed the
// process; `latest` is untouched (a save in progress is only ever a step_N.tmp directory).
//
// Signal dispositions belong to the process, so this state is process-wide by nature.
#pragma once
#include <string>
#include <vector>

namespace moe::run {

constexpr double kRepeatSeconds = 0.5;

// "SIGTERM" -> 15 (SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP); 0 for any other name.
int signal_number(const std::string& name);
// 15 -> "SIGTERM"; "signal N" for others.
std::string signal_name(int sig);

// Catches exactly `signals` (numbers) from now on; the others get their default action back.
// Safe to call again (main() catches all three before MPI starts, `moe train` then narrows the
// set to run.stop_signals). A signal recorded before a narrowing still counts. Without
// `exit_on_repeat` a second signal is only counted (moe sweep passes each one on to its runs).
void catch_stop_signals(const std::vector<int>& signals, bool exit_on_repeat = true);
// The first stop signal this process received, or 0.
int stop_signal();
// How many stop signals arrived, and the last of them.
int stop_signal_count();
int last_stop_signal();
// Seconds since that signal arrived (0 when none has).
double seconds_since_stop_signal();
// Bounds the stop: once a signal has arrived, the process exits (128 + signal) if it still runs
// `seconds` after it (0: no bound). `rank` names this process in that exit's line.
void set_stop_timeout(double seconds, int rank);
// Disarms the bound (the stop finished; the process is exiting normally).
void stop_finished();

}  // namespace moe::run
