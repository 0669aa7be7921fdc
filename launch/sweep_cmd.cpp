// moe sweep: LR-transfer sweeps. Expands a sweep spec (configs/sweeps/*.toml) into one resolved
// config per run; --dry-run lists them, --run local trains them here (mpirun per run when it
// has several ranks), --run slurm submits one job array, --report collects the results into a
// CSV, a plot and the per-preset summary (optimal LR per scale, its drift, monotonicity).
#include <cstdio>
#include <fstream>

#include "comm/agree.h"
#include "launch/commands.h"
#include "launch/plots.h"
#include "launch/process.h"
#include "launch/sweep_exec.h"
#include "src/core/output_file.h"
#include "src/run/stop_signals.h"
#include "src/train/sweep.h"
#include "src/train/sweep_report.h"

namespace moe::launch {
namespace {

struct SweepArgs {
  std::string spec, run, out;
  std::vector<std::string> sets;
  bool dry_run = false, report = false, wait = false, prepare = false;
  int jobs = 1;
};

void print_plan(const train::Sweep& s) {
  const train::SweepSpec& sp = s.spec;
  std::string scales, presets, seeds;
  char buf[32];
  for (double x : sp.scales) {
    std::snprintf(buf, sizeof buf, "%g", x);
    scales += (scales.empty() ? "" : ",") + std::string(buf);
  }
  for (const auto& p : sp.presets) presets += (presets.empty() ? "" : ",") + p;
  for (int64_t x : sp.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(x);
  std::printf("sweep %s: regime %s, scales %s, %d lr(s) %.3e..%.3e, presets %s, seeds %s\n", s.name.c_str(),
              sp.regime.c_str(), scales.c_str(), int(s.lrs.size()), s.lrs.front(), s.lrs.back(), presets.c_str(),
              seeds.c_str());
  std::printf("%d run(s) of %lld steps (%lld tokens = steps x batch %lld x seq_len %lld), %lld rank(s) each, in %s\n",
              int(s.runs.size()), (long long)s.steps, (long long)(s.steps * s.base.train.batch * s.base.model.seq_len),
              (long long)s.base.train.batch, (long long)s.base.model.seq_len, (long long)sp.ranks, s.dir.c_str());
  std::fflush(stdout);
}

// Writes report.csv, summary.txt and loss_vs_lr.png into the sweep directory and prints the
// summary. Returns the number of runs that neither finished nor diverged.
int write_report(const train::Sweep& s) {
  std::vector<train::RunResult> results = train::collect_results(s);
  const std::string csv = s.dir + "/report.csv", txt = s.dir + "/summary.txt", png = s.dir + "/loss_vs_lr.png";
  write_output_atomically(csv, train::results_csv(results));
  std::string summary = train::format_summary(results, train::summarize(results));
  write_output_atomically(txt, summary);
  std::printf("\n%s\n", summary.c_str());
  std::printf("csv: %s\nsummary: %s\n", csv.c_str(), txt.c_str());
  std::string why = render_plot(kSweepPlotScript, {csv, png});
  std::printf("plot: %s\n", why.empty() ? png.c_str() : why.c_str());
  int unaccounted = 0;
  for (const train::RunResult& r : results) unaccounted += r.status != "finished" && !r.diverged;
  return unaccounted;
}

int run_sweep(const SweepArgs& a) {
  if (world().size() != 1 || !start_env("OMPI_COMM_WORLD_SIZE").empty() || !start_env("PMIX_RANK").empty())
    throw InputError("moe sweep starts mpirun or sbatch itself: run it as a plain command, not under mpirun or srun",
                     true);
  if (a.wait && a.run != "slurm") throw InputError("--wait goes with --run slurm", true);
  if (a.prepare && !a.run.empty() && a.run != "slurm")
    throw InputError("--prepare goes with --run slurm (or alone)", true);
  train::Sweep s = train::load_sweep(a.spec, a.sets, a.out);
  print_plan(s);
  const bool act = !a.run.empty() || a.report || a.prepare;
  if (a.dry_run || !act) {
    for (const train::SweepRun& r : s.runs) std::printf("%s\n", train::describe_run(r).c_str());
    if (!a.dry_run) std::printf("(nothing run: add --run local, --run slurm, --prepare or --report)\n");
    return 0;
  }
  std::string again = "moe sweep --spec " + a.spec + (a.out.empty() ? "" : " --out " + a.out);
  for (const std::string& x : a.sets) again += " --set " + x;
  bool report = a.report;
  if (a.run == "local") {
    train::write_sweep_files(s);
    LocalOutcome o = run_local(s, a.jobs);
    if (o.stopped_by) {
      std::printf("moe sweep: stopped by %s: %d run(s) finished, %d interrupted with a checkpoint, %d failed, %d not "
                  "started; run `%s --run local` again to continue\n",
                  run::signal_name(o.stopped_by).c_str(), o.ran, o.interrupted, o.failed, o.not_started,
                  again.c_str());
      return kExitStopped;
    }
    std::printf("local sweep done: %d run(s) trained, %d already finished, %d failed\n", o.ran, o.skipped, o.failed);
    report = true;
  } else if (a.run == "slurm" || a.prepare) {
    train::write_sweep_files(s);
    bool submitted = submit_slurm(s, {a.wait, a.prepare});
    if (submitted && !a.wait) std::printf("(report later with: %s --report)\n", again.c_str());
    report = report || a.wait || (!submitted && !a.prepare);
  }
  if (!report) return 0;
  int unaccounted = write_report(s);
  if (unaccounted > 0) {
    std::printf("%d run(s) neither finished nor diverged (see their train.log); run `%s --run ...` again to retry\n",
                unaccounted, again.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void add_sweep(CLI::App& app, std::vector<Command>& cmds) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* sub = app.add_subcommand(
      "sweep", "LR-transfer sweep: expand a spec into runs, run them here or as a Slurm job array, report");
  sub->add_option("--spec", a->spec, "sweep spec (TOML), e.g. configs/sweeps/regime3_cpu.toml")->required();
  sub->add_option("--run", a->run, "local: train the runs here, one after another; slurm: submit one job array")
      ->check(CLI::IsMember({"local", "slurm"}));
  sub->add_flag("--dry-run", a->dry_run, "print one line per run (scale, preset, lr, seed, directory); run nothing");
  sub->add_flag("--report", a->report, "write report.csv, summary.txt and loss_vs_lr.png from the runs' metrics");
  sub->add_flag("--wait", a->wait, "with --run slurm: wait for the job array (sbatch --wait), then report");
  sub->add_flag("--prepare", a->prepare,
                "write the sweep directory and the job-array script; print the sbatch command");
  sub->add_option("--jobs", a->jobs, "with --run local: runs at a time")->check(CLI::PositiveNumber);
  sub->add_option("--out", a->out, "sweep directory (default: the spec's out)");
  sub->add_option("--set", a->sets, "override a key of the base config, after the spec's own set (repeatable)");
  cmds.push_back({sub, [a] {
                    int code = 0;
                    comm::run_agreed(world(), [&] { code = run_sweep(*a); });
                    return code;
                  }});
}

}  // namespace moe::launch
