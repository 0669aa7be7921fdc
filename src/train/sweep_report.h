// What a sweep measured: one result per run (read back from its directory), the CSV, and the
// LR-transfer summary per preset (parameterization.md): the optimal LR at each scale averaged
// over seeds, whether it sits on the grid's edge, its drift in decades across scales, and
// whether the loss improves monotonically with scale at every LR.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/train/sweep.h"

namespace moe::train {

struct RunResult {
  int index = 0;
  double scale = 1;
  std::string preset;
  double lr = 0;
  int64_t seed = 0;
  std::string dir;
  // finished: metrics hold the last step; failed: the run exited with an error before it;
  // pending: not run yet (or still running).
  std::string status = "pending";
  int64_t steps = 0;        // the run's planned steps
  int64_t last_step = 0;    // last step in metrics.jsonl
  double initial_loss = 0;  // cross-entropy at the first logged step (NaN if none)
  // What the run is judged by (NaN unless finished): the held-out cross-entropy of the last
  // step (val_loss), or the training batch's where the run logged no validation (judged_by).
  double final_loss = 0;
  double final_train_loss = 0;  // training cross-entropy of the last step
  std::string judged_by = "val";  // val | train
  double tokens_per_s = 0;  // mean over logged steps after the first (NaN if none)
  // Non-finite loss, a final loss above the initial one, or a run stopped by a non-finite loss.
  bool diverged = false;
};

// Reads one run's metrics.jsonl, its train.log (for a non-finite stop) and markers.
RunResult read_run_result(const SweepRun& run, int64_t steps);
std::vector<RunResult> collect_results(const Sweep& s);
// One row per run: index,scale,preset,lr,seed,status,steps,last_step,initial_loss,final_loss,
// judged_by,final_train_loss,diverged,tokens_per_s,run_dir.
std::string results_csv(const std::vector<RunResult>& results);

// The summary of one preset. Losses are means over seeds of final_loss; a diverged
// seed makes the point diverged (+inf); points with no finished or diverged run are NaN.
struct PresetSummary {
  std::string preset;
  std::vector<double> scales;             // ascending
  std::vector<double> lrs;                // ascending
  std::vector<std::vector<double>> loss;  // [scale][lr]
  std::vector<int> best;                  // per scale: index of the optimal LR, -1 if none
  std::vector<bool> on_edge;              // per scale: no measured LR on one side of the optimum
  std::optional<double> drift_decades;    // log10(lr*(largest scale) / lr*(smallest scale))
  // Per LR: loss strictly decreases from each measured scale to the next larger one.
  std::vector<bool> monotone;
  // At the largest scale: loss at the smallest scale's optimal LR minus the best loss there
  // (what transferring the small model's LR costs).
  std::optional<double> transfer_regret;
  // Seed noise, to read the differences above against: the pooled standard deviation over seeds
  // of one point's final loss (points with >= 2 finished seeds), and each seed's own optimal lr
  // per scale ([seed][scale], NaN where it has none).
  std::vector<int64_t> seeds;
  std::optional<double> seed_std;
  std::vector<std::vector<double>> seed_best_lr;
};

// Summaries in the order the presets first appear in `results`.
std::vector<PresetSummary> summarize(const std::vector<RunResult>& results);
// Human-readable summary: run counts, a loss table per preset (optimum starred), optimal LR per
// scale with edge warnings, drift, monotonicity and the transfer regret.
std::string format_summary(const std::vector<RunResult>& results, const std::vector<PresetSummary>& summaries);

}  // namespace moe::train
