// `moe sweep --run local`: the runs as child processes of this one, each logging to its own
// train.log, with a marker that records how its last attempt ended (finished, failed, or
// interrupted by a signal and resumable).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "launch/process.h"
#include "launch/sweep_exec.h"
#include "src/core/error.h"
#include "src/run/run_lock.h"
#include "src/run/stop_signals.h"
#include "src/train/sweep_report.h"

namespace moe::launch {
namespace fs = std::filesystem;
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The line that says why a run ended: its own last "moe:" line (an error or the stop), else the
// last line that is not mpirun's "-----" framing of its exit report.
std::string last_line(const std::string& path) {
  std::ifstream f(path);
  std::string line, last, last_moe;
  while (std::getline(f, line)) {
    if (line.rfind("moe:", 0) == 0) last_moe = line;
    if (!line.empty() && line.find_first_not_of('-') != std::string::npos) last = line;
  }
  return last_moe.empty() ? last : last_moe;
}

struct Active {
  const train::SweepRun* run;
  double started;
};

}  // namespace

LocalOutcome run_local(const train::Sweep& s, int jobs) {
  // One sweep per out directory: a second one would start the same runs twice.
  const run::RunDirLock sweep_lock(s.dir, "sweep.lock", "the sweep's out directory");
  // A signal stops the sweep the way it stops a run: each running run is told (it checkpoints
  // and exits kExitStopped), the sweep waits for them and starts nothing more. mpirun turns
  // SIGTERM and SIGINT into a kill within a second, but forwards SIGUSR1 as it is.
  run::catch_stop_signals({SIGTERM, SIGINT, SIGUSR1}, /*exit_on_repeat=*/false);
  const auto forward = [&](int sig) { return s.spec.ranks > 1 ? SIGUSR1 : sig; };
  const std::string exe = self_executable();
  const std::vector<std::string> env = launch_environment();
  const int n = int(s.runs.size());
  LocalOutcome out;
  std::deque<const train::SweepRun*> todo;
  for (const train::SweepRun& r : s.runs) {
    if (train::run_finished(r.dir, s.steps)) {
      if (!fs::exists(r.dir + "/" + train::kFinishedMarker)) train::mark_run(r.dir, train::kFinishedMarker, "found finished by moe sweep");
      ++out.skipped;
    } else {
      todo.push_back(&r);
    }
  }
  std::printf("%d of %d run(s) to do, %d already finished; %d at a time\n", int(todo.size()), n, out.skipped, jobs);
  std::fflush(stdout);
  std::map<pid_t, Active> active;
  int signals_passed = 0;
  while ((!todo.empty() && !run::stop_signal()) || !active.empty()) {
    while (!todo.empty() && !run::stop_signal() && int(active.size()) < jobs) {
      const train::SweepRun& r = *todo.front();
      todo.pop_front();
      std::vector<std::string> argv;
      if (s.spec.ranks > 1) {
        argv = s.spec.local.mpirun;
        argv.insert(argv.end(), {"-np", std::to_string(s.spec.ranks)});
      }
      // An interrupted or failed attempt continues from its checkpoint.
      argv.insert(argv.end(), {exe, "train", "--config", r.dir + "/" + train::kRunConfigFile, "--resume", "auto"});
      const std::string log = r.dir + "/" + train::kRunLog;
      pid_t pid;
      try {
        const std::string reset = train::reset_if_not_resumable(r);
        std::ofstream(log, std::ios::app) << "# " << shell_join(argv) << "\n";
        if (!reset.empty())
          std::printf("[%3d/%d] %s: starting over (%s)\n", r.index + 1, n, r.name.c_str(), reset.c_str());
        std::printf("[%3d/%d] %s: started\n", r.index + 1, n, r.name.c_str());
        std::fflush(stdout);
        // Should the sweep itself be killed (SIGKILL, the OOM killer), each run still gets
        // the stop it would have passed on, and checkpoints instead of training on as an orphan.
        pid = spawn(argv, env, log, forward(SIGTERM));
      } catch (const Error& e) {
        train::mark_run(r.dir, train::kFailedMarker, std::string("could not start: ") + e.what());
        std::printf("[%3d/%d] %s: FAILED to start: %s\n", r.index + 1, n, r.name.c_str(), e.what());
        ++out.failed;
        continue;
      }
      active[pid] = {&r, now()};
    }
    // Every signal the sweep receives goes on to every running run (a second one makes them
    // exit at once).
    for (; signals_passed < run::stop_signal_count(); ++signals_passed) {
      const int sig = run::last_stop_signal();
      std::printf("moe sweep: %s: passing it on to %d running run(s) and waiting for them; no new run starts\n",
                  run::signal_name(sig).c_str(), int(active.size()));
      std::fflush(stdout);
      for (const auto& [pid, a] : active) ::kill(pid, forward(sig));
    }
    bool reaped = false;
    for (auto it = active.begin(); it != active.end();) {
      int rc = wait_child(it->first, /*nohang=*/true);
      if (rc < 0) {
        ++it;
        continue;
      }
      reaped = true;
      const train::SweepRun& r = *it->second.run;
      const double secs = now() - it->second.started;
      char took[64];
      std::snprintf(took, sizeof took, "%.1f s", secs);
      if (rc == 0 && train::run_finished(r.dir, s.steps)) {
        train::mark_run(r.dir, train::kFinishedMarker, std::string("exit 0 after ") + took);
        if (!s.spec.keep_checkpoints) fs::remove_all(r.dir + "/checkpoints");
        train::RunResult res = train::read_run_result(r, s.steps);
        std::printf("[%3d/%d] %s: finished in %s, %s loss %.4f%s\n", r.index + 1, n, r.name.c_str(), took,
                    res.judged_by.c_str(), res.final_loss, res.diverged ? " (diverged)" : "");
        ++out.ran;
      } else if (rc == kExitStopped) {
        train::mark_run(r.dir, train::kInterruptedMarker,
                        "stopped by a signal after " + std::string(took) + "; the next moe sweep continues it");
        std::printf("[%3d/%d] %s: interrupted after %s: %s\n", r.index + 1, n, r.name.c_str(), took,
                    last_line(r.dir + "/" + train::kRunLog).c_str());
        ++out.interrupted;
      } else {
        if (rc == 0) rc = 1;  // exit 0 without the last step is a failure too
        train::mark_run(r.dir, train::kFailedMarker, "exit " + std::to_string(rc) + " after " + took);
        std::printf("[%3d/%d] %s: FAILED (exit %d after %s): %s\n", r.index + 1, n, r.name.c_str(), rc, took,
                    last_line(r.dir + "/" + train::kRunLog).c_str());
        ++out.failed;
      }
      std::fflush(stdout);
      it = active.erase(it);
    }
    if (!reaped && !active.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  out.stopped_by = run::stop_signal();
  out.not_started = int(todo.size());
  return out;
}

}  // namespace moe::launch
