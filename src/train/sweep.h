// LR-transfer sweeps (parameterization.md, "LR-transfer sweep"): a sweep spec (TOML) names a
// base config, a regime, scale factors, a log-spaced learning-rate grid, presets, seeds and a
// token budget; expansion gives one resolved config per run, each in its own directory under
// the sweep directory. Scaling goes through scale_config (coord_check.h), the same rule the
// coordinate check uses, so a sweep and a coord check at "scale 4" are the same model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace moe::train {

// The learning-rate grid: either min, max and points (log-spaced, both ends included) or an
// explicit list of values.
struct SweepLr {
  std::optional<double> min, max;
  std::optional<int64_t> points;
  std::optional<std::vector<double>> values;
  template <class V>
  void visit(V& v) {
    v("min", min);
    v("max", max);
    v("points", points);
    v("values", values);
  }
};

// `--run local`: runs with ranks > 1 start as <mpirun...> -np R moe train ...
struct SweepLocal {
  std::vector<std::string> mpirun = {"mpirun"};
  template <class V>
  void visit(V& v) {
    v("mpirun", mpirun);
  }
};

// `--run slurm`: one job array, one array task per run (slurm/sweep_array.sbatch). Partition and
// account are the site's business: sbatch_args, or sbatch's own SBATCH_PARTITION/SBATCH_ACCOUNT.
struct SweepSlurm {
  std::string launcher = "srun";         // srun | mpirun | direct (ranks = 1 only)
  std::string srun_mpi = "pmix";         // srun --mpi=...; Debian's Open MPI needs pmix
  std::string time;                      // --time for each array task; "" = the site's default
  int64_t gpus_per_task = 0;             // --gpus-per-task; 0 = none asked
  int64_t cpus_per_task = 0;             // --cpus-per-task; 0 = the site's default
  int64_t max_parallel = 0;              // array throttle (--array=...%N); 0 = no limit
  std::string job_name;                  // default: moe-sweep-<spec file stem>
  std::vector<std::string> sbatch_args;  // passed to sbatch as they are, e.g. "--partition=gpu"
  template <class V>
  void visit(V& v) {
    v("launcher", launcher);
    v("srun_mpi", srun_mpi);
    v("time", time);
    v("gpus_per_task", gpus_per_task);
    v("cpus_per_task", cpus_per_task);
    v("max_parallel", max_parallel);
    v("job_name", job_name);
    v("sbatch_args", sbatch_args);
  }
};

struct SweepSpec {
  std::string base;    // base config at scale 1; relative paths are from the spec's folder
  std::string regime;  // I (N, Ne) | II (N, M, K) | III (N, Ne, M, K) | L (depth); or N, Ne, M, K
  std::vector<double> scales;
  std::vector<std::string> presets = {"sp", "mup", "mssp"};
  std::vector<int64_t> seeds = {1};  // run.seed (the init); the data order stays fixed
  int64_t tokens = 0;                // budget per run: steps = tokens / (batch * seq_len)
  int64_t ranks = 1;                 // MPI ranks per run
  std::optional<int64_t> ep;         // parallel.ep of every run; default: the base config's
  std::string out;                   // sweep directory (relative to the working directory)
  std::vector<std::string> set;      // overrides of the base config, as --set key=value
  bool keep_checkpoints = true;      // false: delete a run's checkpoints/ once it has finished
  SweepLr lr;
  SweepLocal local;
  SweepSlurm slurm;
  template <class V>
  void visit(V& v) {
    v("base", base);
    v("regime", regime);
    v("scales", scales);
    v("presets", presets);
    v("seeds", seeds);
    v("tokens", tokens);
    v("ranks", ranks);
    v("ep", ep);
    v("out", out);
    v("set", set);
    v("keep_checkpoints", keep_checkpoints);
    v("lr", lr);
    v("local", local);
    v("slurm", slurm);
  }
};

struct SweepRun {
  int index = 0;  // position in runs.txt = Slurm array task id
  double scale = 1;
  std::string preset;
  double lr = 0;
  int64_t seed = 0;
  std::string name;  // s<scale>_<preset>_lr<lr>_seed<seed>
  std::string dir;   // absolute
  config::Config config;
};

struct Sweep {
  SweepSpec spec;
  std::string spec_path;
  std::string name;  // the spec file's stem
  std::string dir;   // absolute sweep directory
  config::Config base;
  std::vector<double> lrs;
  int64_t steps = 0;
  std::vector<SweepRun> runs;  // preset-major, then scale, lr, seed
};

// Reads and validates a spec (unknown keys and wrong types name the key and the file), loads
// its base config with `spec.set` then `base_sets` applied, and expands it. `out` replaces the
// spec's output directory when not empty.
Sweep load_sweep(const std::string& spec_path, const std::vector<std::string>& base_sets = {},
                 const std::string& out = "");
// The grid of `lr`: log-spaced from min to max, or the explicit values; `origin` names the file.
std::vector<double> lr_grid(const SweepLr& lr, const std::string& origin);
// One line for --dry-run: index, scale, preset, lr, seed, shape and run directory.
std::string describe_run(const SweepRun& r);

// Files in a run directory.
inline const char* const kRunConfigFile = "run.toml";   // the resolved config the run trains
inline const char* const kFinishedMarker = "finished";  // written once metrics hold the last step
inline const char* const kFailedMarker = "failed";      // exit code of the last failed attempt
inline const char* const kInterruptedMarker = "interrupted";  // stopped by a signal, checkpoint kept: resumable
inline const char* const kRunLog = "train.log";         // stdout and stderr of the run

// A run is finished when the last record of its metrics.jsonl is step `steps`.
bool run_finished(const std::string& run_dir, int64_t steps);
// Writes `marker` (finished, failed or interrupted) with `text` and removes the other two, so a
// run never carries two verdicts.
void mark_run(const std::string& run_dir, const char* marker, const std::string& text);
// Runs start with `moe train --resume auto`, which continues a run from its checkpoint. One whose
// checkpoint that would refuse (saved under another config: an earlier token budget, say) is
// wiped here so it starts over; returns why ("" when it can resume or start as it is). Throws
// InputError when another job holds the run's directory.
std::string reset_if_not_resumable(const SweepRun& r);
// Writes the sweep directory: a copy of the spec, runs.txt (line i: "<steps>\t<run dir>", read
// by the Slurm array task i) and each run's resolved config. Does not touch results.
void write_sweep_files(const Sweep& s);

}  // namespace moe::train
