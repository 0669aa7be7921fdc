// `moe sweep --run slurm`: one job array for the unfinished runs of a sweep, running
// slurm/sweep_array.sbatch (compiled in) with one array task per run.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "launch/process.h"
#include "launch/sweep_array_script.h"
#include "launch/sweep_exec.h"
#include "src/core/error.h"
#include "src/core/output_file.h"

namespace moe::launch {
namespace fs = std::filesystem;
namespace {

// "0-3,7,9-12": the indices as Slurm array ranges.
std::string array_ranges(const std::vector<int>& idx) {
  std::string out;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && idx[j + 1] == idx[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(idx[i]);
    if (j > i) out += "-" + std::to_string(idx[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

bool submit_slurm(const train::Sweep& s, const SlurmOptions& opt) {
  const train::SweepSlurm& sl = s.spec.slurm;
  std::vector<int> todo;
  for (const train::SweepRun& r : s.runs)
    if (!train::run_finished(r.dir, s.steps)) todo.push_back(r.index);
  if (todo.empty()) {
    std::printf("all %d run(s) are finished: nothing to submit\n", int(s.runs.size()));
    return false;
  }
  // Array tasks continue their runs with --resume auto; a run saved under another config starts
  // over (a requeued task never does: this runs at submission only).
  if (!opt.prepare)
    for (int i : todo) {
      const train::SweepRun& r = s.runs[size_t(i)];
      const std::string reset = train::reset_if_not_resumable(r);
      if (!reset.empty()) std::printf("%s: starting over (%s)\n", r.name.c_str(), reset.c_str());
    }
  const std::string script = s.dir + "/sweep_array.sbatch";
  write_output_atomically(script, kSweepArrayScript);
  chmod(script.c_str(), 0755);
  fs::create_directories(s.dir + "/slurm");

  std::string array = array_ranges(todo);
  if (sl.max_parallel > 0) array += "%" + std::to_string(sl.max_parallel);
  std::vector<std::string> argv = {"sbatch",
                                   "--parsable",
                                   "--array=" + array,
                                   "--ntasks=" + std::to_string(s.spec.ranks),
                                   "--job-name=" + (sl.job_name.empty() ? "moe-sweep-" + s.name : sl.job_name),
                                   "--output=" + s.dir + "/slurm/%A_%a.out"};
  if (!sl.time.empty()) argv.push_back("--time=" + sl.time);
  if (sl.gpus_per_task > 0) argv.push_back("--gpus-per-task=" + std::to_string(sl.gpus_per_task));
  if (sl.cpus_per_task > 0) argv.push_back("--cpus-per-task=" + std::to_string(sl.cpus_per_task));
  argv.insert(argv.end(), sl.sbatch_args.begin(), sl.sbatch_args.end());
  if (opt.wait) argv.push_back("--wait");
  argv.push_back(script);
  const std::map<std::string, std::string> vars = {{"MOE_BIN", self_executable()},
                                                   {"MOE_RUNS", s.dir + "/runs.txt"},
                                                   {"MOE_LAUNCHER", sl.launcher},
                                                   {"MOE_SRUN_MPI", sl.srun_mpi},
                                                   {"MOE_KEEP_CHECKPOINTS", s.spec.keep_checkpoints ? "1" : "0"}};
  // The exact submission, to repeat or adapt by hand.
  std::string line;
  for (const auto& [k, v] : vars) line += shell_join({k + "=" + v}) + " ";
  std::vector<std::string> by_hand = argv;
  by_hand.erase(by_hand.begin() + 1);  // --parsable is for this program
  write_output_atomically(s.dir + "/submit.sh", "#!/bin/sh\n# Written by moe sweep: submits the unfinished runs of " +
                                                  s.spec_path + " as one job array.\n" + line + shell_join(by_hand) +
                                                  "\n");
  if (opt.prepare) {
    std::printf("prepared %d run(s) as array tasks %s; submit with: sh %s/submit.sh\n", int(todo.size()), array.c_str(),
                s.dir.c_str());
    return false;
  }

  std::string job;
  std::printf("submitting %d run(s) as one job array (tasks %s)\n", int(todo.size()), array.c_str());
  std::fflush(stdout);
  int rc = run_with_lines(argv, launch_environment(vars), [&](const std::string& out) {
    if (!job.empty() || out.empty()) return;
    job = out.substr(0, out.find(';'));  // --parsable: "<id>" or "<id>;<cluster>"
    std::printf("submitted job array %s; task logs: %s/slurm/%s_<task>.out\n", job.c_str(), s.dir.c_str(), job.c_str());
    if (opt.wait) std::printf("waiting for job array %s to end...\n", job.c_str());
    std::fflush(stdout);
  });
  if (job.empty())
    throw Error("sbatch did not submit the job array (exit " + std::to_string(rc) + "); see its message above");
  if (opt.wait)
    std::printf("job array %s ended (sbatch --wait exit %d%s)\n", job.c_str(), rc,
                rc ? ": some tasks failed, see the report" : "");
  else
    std::printf("when it has ended: moe sweep --spec %s --report\n", s.spec_path.c_str());
  return true;
}

}  // namespace moe::launch
