// `moe sweep --run local`: the runs as child processes of this one, each logging to its own
// train.log, with markers that record how each attempt ended.
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
#include "src/train/sweep_report.h"

namespace moe::launch {
namespace fs = std::filesystem;
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string last_line(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return last;
}

struct Active {
  const train::SweepRun* run;
  double started;
};

}  // namespace

LocalOutcome run_local(const train::Sweep& s, int jobs) {
  const std::string exe = self_executable();
  const std::vector<std::string> env = launch_environment();
  const int n = int(s.runs.size());
  LocalOutcome out;
  std::deque<const train::SweepRun*> todo;
  for (const train::SweepRun& r : s.runs) {
    if (train::run_finished(r.dir, s.steps)) {
      if (!fs::exists(r.dir + "/" + train::kFinishedMarker))
        std::ofstream(r.dir + "/" + train::kFinishedMarker) << "found finished by moe sweep\n";
      ++out.skipped;
    } else {
      todo.push_back(&r);
    }
  }
  std::printf("%d of %d run(s) to do, %d already finished; %d at a time\n", int(todo.size()), n, out.skipped, jobs);
  std::fflush(stdout);
  std::map<pid_t, Active> active;
  while (!todo.empty() || !active.empty()) {
    while (!todo.empty() && int(active.size()) < jobs) {
      const train::SweepRun& r = *todo.front();
      todo.pop_front();
      // metrics.jsonl is appended to: a half-done earlier attempt must not mix into this one.
      for (const char* f : {"metrics.jsonl", train::kFinishedMarker, train::kFailedMarker}) {
        std::error_code ec;  // something in the way (a directory) makes the run fail, not the sweep
        fs::remove(r.dir + "/" + f, ec);
      }
      std::vector<std::string> argv;
      if (s.spec.ranks > 1) {
        argv = s.spec.local.mpirun;
        argv.insert(argv.end(), {"-np", std::to_string(s.spec.ranks)});
      }
      // Each attempt starts over: earlier attempts' checkpoints must not count as this run's.
      argv.insert(argv.end(), {exe, "train", "--config", r.dir + "/" + train::kRunConfigFile, "--overwrite"});
      const std::string log = r.dir + "/" + train::kRunLog;
      std::ofstream(log) << "# " << shell_join(argv) << "\n";
      std::printf("[%3d/%d] %s: started\n", r.index + 1, n, r.name.c_str());
      std::fflush(stdout);
      pid_t pid;
      try {
        pid = spawn(argv, env, log);
      } catch (const Error& e) {
        std::ofstream(r.dir + "/" + train::kFailedMarker) << "could not start: " << e.what() << "\n";
        std::printf("[%3d/%d] %s: FAILED to start: %s\n", r.index + 1, n, r.name.c_str(), e.what());
        ++out.failed;
        continue;
      }
      active[pid] = {&r, now()};
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
        std::ofstream(r.dir + "/" + train::kFinishedMarker) << "exit 0 after " << took << "\n";
        if (!s.spec.keep_checkpoints) fs::remove_all(r.dir + "/checkpoints");
        train::RunResult res = train::read_run_result(r, s.steps);
        std::printf("[%3d/%d] %s: finished in %s, %s loss %.4f%s\n", r.index + 1, n, r.name.c_str(), took,
                    res.judged_by.c_str(), res.final_loss, res.diverged ? " (diverged)" : "");
        ++out.ran;
      } else {
        if (rc == 0) rc = 1;  // exit 0 without the last step is a failure too
        std::ofstream(r.dir + "/" + train::kFailedMarker) << "exit " << rc << " after " << took << "\n";
        std::printf("[%3d/%d] %s: FAILED (exit %d after %s): %s\n", r.index + 1, n, r.name.c_str(), rc, took,
                    last_line(r.dir + "/" + train::kRunLog).c_str());
        ++out.failed;
      }
      std::fflush(stdout);
      it = active.erase(it);
    }
    if (!reaped && !active.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return out;
}

}  // namespace moe::launch
