// Sweep results: reading runs back, the CSV and the per-preset LR-transfer summary.
#include "src/train/sweep_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "src/train/run_metrics.h"

namespace moe::train {
namespace fs = std::filesystem;
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The Trainer stops a run with "non-finite loss|gradient at step N" (train.nonfinite = "stop").
bool log_says_nonfinite(const std::string& run_dir) {
  std::ifstream f(run_dir + "/" + kRunLog);
  for (std::string line; std::getline(f, line);)
    if (line.find("non-finite") != std::string::npos) return true;
  return false;
}

std::string num(double v, const char* f = "%.6g") {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

RunResult read_run_result(const SweepRun& run, int64_t steps) {
  RunResult r;
  r.index = run.index;
  r.scale = run.scale;
  r.preset = run.preset;
  r.lr = run.lr;
  r.seed = run.seed;
  r.dir = run.dir;
  r.steps = steps;
  r.initial_loss = r.final_loss = r.final_train_loss = r.tokens_per_s = kNaN;
  std::vector<MetricsRecord> recs = read_metrics(run.dir + "/" + kMetricsFile);
  bool any_nonfinite = false;
  double tps = 0;
  int tps_n = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    const MetricsRecord& m = recs[i];
    if (!std::isfinite(m.get("ce"))) any_nonfinite = true;
    if (i > 0 || recs.size() == 1) {  // the first step also pays for allocation and warm-up
      tps += m.get("tokens_per_s");
      ++tps_n;
    }
  }
  if (!recs.empty()) {
    r.initial_loss = recs.front().get("ce");
    r.last_step = recs.back().step;
  }
  if (tps_n) r.tokens_per_s = tps / tps_n;
  if (!recs.empty() && recs.back().step == steps) {  // as run_finished
    r.status = "finished";
    r.final_train_loss = recs.back().get("ce");
    const double val = recs.back().get("val_loss");
    r.judged_by = std::isnan(val) && recs.back().values.count("val_loss") == 0 ? "train" : "val";
    r.final_loss = r.judged_by == "val" ? val : r.final_train_loss;
    r.diverged = !std::isfinite(r.final_loss) || !std::isfinite(r.final_train_loss) || r.final_loss > r.initial_loss;
  } else if (fs::exists(run.dir + "/" + kFailedMarker)) {
    r.status = "failed";
    r.diverged = any_nonfinite || log_says_nonfinite(run.dir);
  } else if (fs::exists(run.dir + "/" + kInterruptedMarker)) {
    r.status = "interrupted";  // stopped by a signal with a checkpoint: the next sweep continues it
  }
  return r;
}

std::vector<RunResult> collect_results(const Sweep& s) {
  std::vector<RunResult> out;
  for (const SweepRun& r : s.runs) out.push_back(read_run_result(r, s.steps));
  return out;
}

std::string results_csv(const std::vector<RunResult>& results) {
  std::ostringstream os;
  os << "index,scale,preset,lr,seed,status,steps,last_step,initial_loss,final_loss,judged_by,final_train_loss,"
        "diverged,tokens_per_s,run_dir\n";
  for (const RunResult& r : results)
    os << r.index << "," << num(r.scale, "%g") << "," << r.preset << "," << num(r.lr, "%.6e") << "," << r.seed << ","
       << r.status << "," << r.steps << "," << r.last_step << "," << num(r.initial_loss) << "," << num(r.final_loss)
       << "," << (r.status == "finished" ? r.judged_by : "") << "," << num(r.final_train_loss) << ","
       << (r.diverged ? 1 : 0) << "," << num(r.tokens_per_s, "%.1f") << "," << r.dir << "\n";
  return os.str();
}

namespace {

template <class T> void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// The position of x in a sorted vector that holds it.
template <class T> size_t index_of(const std::vector<T>& v, const T& x) {
  return size_t(std::lower_bound(v.begin(), v.end(), x) - v.begin());
}

// The index of the smallest finite value, -1 if there is none.
int argmin_finite(const std::vector<double>& v) {
  int best = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (std::isfinite(v[i]) && (best < 0 || v[i] < v[size_t(best)])) best = int(i);
  return best;
}

// PresetSummary::seeds, seed_std and seed_best_lr of s from its preset's runs.
void seed_noise(const std::vector<RunResult>& results, PresetSummary& s) {
  const size_t ns = s.scales.size(), nl = s.lrs.size();
  for (const RunResult& r : results)
    if (r.preset == s.preset) s.seeds.push_back(r.seed);
  sort_unique(s.seeds);
  // [seed][scale][lr]: a finished run's loss, +inf diverged, NaN not there
  std::vector<std::vector<std::vector<double>>> loss(
      s.seeds.size(), std::vector<std::vector<double>>(ns, std::vector<double>(nl, kNaN)));
  for (const RunResult& r : results) {
    if (r.preset != s.preset) continue;
    loss[index_of(s.seeds, r.seed)][index_of(s.scales, r.scale)][index_of(s.lrs, r.lr)] =
        r.diverged ? kInf : r.status == "finished" ? r.final_loss : kNaN;
  }
  double ss = 0;
  int64_t dof = 0;
  for (size_t si = 0; si < ns; ++si)
    for (size_t li = 0; li < nl; ++li) {
      double sum = 0;
      int n = 0;
      for (size_t k = 0; k < s.seeds.size(); ++k)
        if (std::isfinite(loss[k][si][li])) sum += loss[k][si][li], ++n;
      if (n < 2) continue;
      const double mean = sum / n;
      for (size_t k = 0; k < s.seeds.size(); ++k)
        if (std::isfinite(loss[k][si][li])) ss += (loss[k][si][li] - mean) * (loss[k][si][li] - mean);
      dof += n - 1;
    }
  if (dof > 0) s.seed_std = std::sqrt(ss / double(dof));
  for (size_t k = 0; k < s.seeds.size(); ++k) {
    std::vector<double> best(ns, kNaN);
    for (size_t si = 0; si < ns; ++si)
      if (const int b = argmin_finite(loss[k][si]); b >= 0) best[si] = s.lrs[size_t(b)];
    s.seed_best_lr.push_back(best);
  }
}

}  // namespace

std::vector<PresetSummary> summarize(const std::vector<RunResult>& results) {
  std::vector<PresetSummary> out;
  std::vector<std::string> presets;
  for (const RunResult& r : results)
    if (std::find(presets.begin(), presets.end(), r.preset) == presets.end()) presets.push_back(r.preset);
  for (const std::string& p : presets) {
    PresetSummary s;
    s.preset = p;
    for (const RunResult& r : results) {
      if (r.preset != p) continue;
      s.scales.push_back(r.scale);
      s.lrs.push_back(r.lr);
    }
    sort_unique(s.scales);
    sort_unique(s.lrs);
    const size_t ns = s.scales.size(), nl = s.lrs.size();
    // [scale][lr] -> (sum of finished losses, count, any diverged)
    struct Acc {
      double sum = 0;
      int n = 0;
      bool diverged = false;
    };
    std::vector<std::vector<Acc>> acc(ns, std::vector<Acc>(nl));
    for (const RunResult& r : results) {
      if (r.preset != p) continue;
      Acc& a = acc[index_of(s.scales, r.scale)][index_of(s.lrs, r.lr)];
      if (r.diverged)
        a.diverged = true;
      else if (r.status == "finished")
        a.sum += r.final_loss, ++a.n;
    }
    s.loss.assign(ns, std::vector<double>(nl, kNaN));
    for (size_t si = 0; si < ns; ++si)
      for (size_t li = 0; li < nl; ++li) {
        const Acc& a = acc[si][li];
        s.loss[si][li] = a.diverged ? kInf : a.n ? a.sum / a.n : kNaN;
      }
    for (size_t si = 0; si < ns; ++si) {
      const int best = argmin_finite(s.loss[si]);
      bool edge = false;
      if (best >= 0) {
        bool below = false, above = false;  // a measured point (finite or diverged) on each side
        for (int li = 0; li < int(nl); ++li) {
          if (std::isnan(s.loss[si][li])) continue;
          if (li < best) below = true;
          if (li > best) above = true;
        }
        edge = !below || !above;
      }
      s.best.push_back(best);
      s.on_edge.push_back(edge);
    }
    if (ns >= 2 && s.best.front() >= 0 && s.best.back() >= 0) {
      s.drift_decades = std::log10(s.lrs[s.best.back()] / s.lrs[s.best.front()]);
      const double at_small_optimum = s.loss.back()[s.best.front()];
      if (!std::isnan(at_small_optimum)) s.transfer_regret = at_small_optimum - s.loss.back()[s.best.back()];
    }
    seed_noise(results, s);
    for (size_t li = 0; li < nl; ++li) {
      bool mono = true;
      double prev = kNaN;
      for (size_t si = 0; si < ns; ++si) {
        double v = s.loss[si][li];
        if (std::isnan(v)) continue;
        if (!std::isnan(prev) && !(v < prev)) mono = false;
        prev = v;
      }
      s.monotone.push_back(mono);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string format_summary(const std::vector<RunResult>& results, const std::vector<PresetSummary>& summaries) {
  std::ostringstream os;
  int finished = 0, diverged = 0, failed = 0, pending = 0;
  for (const RunResult& r : results) {
    finished += r.status == "finished";
    failed += r.status == "failed";
    pending += r.status == "pending";
    diverged += r.diverged;
  }
  os << "runs: " << results.size() << " (" << finished << " finished, " << failed << " failed, " << pending
     << " pending; " << diverged << " diverged)\n";
  if (pending) os << "WARNING: " << pending << " run(s) have not finished: the summary leaves them out\n";
  int by_train = 0;
  for (const RunResult& r : results) by_train += r.status == "finished" && r.judged_by == "train";
  if (by_train == 0)
    os << "loss = held-out validation cross-entropy after the last step (val_loss), mean over seeds; "
          "div = diverged; * = optimal lr at that scale\n";
  else
    os << "loss = cross-entropy at the last step, mean over seeds (WARNING: " << by_train
       << " finished run(s) logged no val_loss and are judged by their last training batch); div = diverged; "
          "* = optimal lr at that scale\n";
  char buf[256];
  for (const PresetSummary& s : summaries) {
    os << "\npreset " << s.preset << "\n";
    std::snprintf(buf, sizeof buf, "  %-12s", "lr \\ scale");
    os << buf;
    for (double sc : s.scales) {
      std::snprintf(buf, sizeof buf, " %11g", sc);
      os << buf;
    }
    os << "  monotone\n";
    for (size_t li = 0; li < s.lrs.size(); ++li) {
      std::snprintf(buf, sizeof buf, "  %-12.3e", s.lrs[li]);
      os << buf;
      for (size_t si = 0; si < s.scales.size(); ++si) {
        double v = s.loss[si][li];
        std::string cell = std::isnan(v) ? "-" : std::isinf(v) ? "div" : num(v, "%.4f");
        if (s.best[si] == int(li)) cell += "*";
        std::snprintf(buf, sizeof buf, " %11s", cell.c_str());
        os << buf;
      }
      os << "  " << (s.monotone[li] ? "yes" : "NO") << "\n";
    }
    for (size_t si = 0; si < s.scales.size(); ++si) {
      if (s.best[si] < 0) {
        std::snprintf(buf, sizeof buf, "  optimal lr at scale %g: none (no finished, non-diverged run)\n",
                      s.scales[si]);
      } else {
        std::snprintf(buf, sizeof buf, "  optimal lr at scale %g: %.3e (loss %.4f)%s\n", s.scales[si],
                      s.lrs[s.best[si]], s.loss[si][s.best[si]],
                      s.on_edge[si] ? "  WARNING: on the edge of the lr grid, the true optimum may lie outside" : "");
      }
      os << buf;
    }
    if (s.drift_decades) {
      std::snprintf(buf, sizeof buf, "  drift of the optimal lr, scale %g -> %g: %+.2f decades\n", s.scales.front(),
                    s.scales.back(), *s.drift_decades);
      os << buf;
    } else {
      os << "  drift of the optimal lr: unknown (needs an optimum at the smallest and the largest scale)\n";
    }
    std::string fails;
    for (size_t li = 0; li < s.lrs.size(); ++li)
      if (!s.monotone[li]) fails += (fails.empty() ? "" : ", ") + num(s.lrs[li], "%.3e");
    os << "  loss improves monotonically with scale at every lr: "
       << (fails.empty() ? "yes" : "no (not at lr " + fails + ")") << "\n";
    if (s.transfer_regret) {
      std::snprintf(buf, sizeof buf, "  loss at scale %g with the scale-%g optimal lr, minus the best there: %s\n",
                    s.scales.back(), s.scales.front(),
                    std::isinf(*s.transfer_regret) ? "diverged" : num(*s.transfer_regret, "%+.4f").c_str());
      os << buf;
    }
    if (s.seeds.size() >= 2) {
      os << "  each seed's optimal lr per scale:";
      for (size_t k = 0; k < s.seeds.size(); ++k) {
        os << (k ? ";" : "") << " seed " << s.seeds[k];
        for (double lr : s.seed_best_lr[k]) os << " " << num(lr, "%.3e");
      }
      os << "\n";
    }
    if (s.seed_std) {
      std::snprintf(buf, sizeof buf,
                    "  seed noise: one run's final loss varies by %.4f (pooled std over seeds); a mean over %zu "
                    "seeds by about %.4f\n",
                    *s.seed_std, s.seeds.size(), *s.seed_std / std::sqrt(double(s.seeds.size())));
      os << buf;
    }
  }
  return os.str();
}

}  // namespace moe::train
