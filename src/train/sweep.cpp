// Sweep specs: strict parsing, checks that name the key and the file, and expansion into one
// resolved config per run.
#include "src/train/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "src/config/toml_reader.h"
#include "src/core/error.h"
#include "src/core/output_file.h"
#include "src/train/coord_check.h"
#include "src/run/run_lock.h"
#include "src/run/start.h"
#include "src/train/run_metrics.h"

namespace moe::train {
namespace fs = std::filesystem;
namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open " + what, true);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct SpecChecker {
  const std::string& origin;
  void require(bool ok, const std::string& key, const std::string& what) const {
    if (!ok) throw InputError(origin + ": " + key + ": " + what, true);
  }
  template <class T>
  void unique(const std::vector<T>& v, const std::string& key) const {
    std::set<T> seen(v.begin(), v.end());
    require(seen.size() == v.size(), key, "lists a value twice");
  }
};

void check_spec(const SweepSpec& s, const std::string& origin) {
  SpecChecker ck{origin};
  ck.require(!s.base.empty(), "base", "missing: the base config at scale 1 (a path relative to this file)");
  static const std::set<std::string> regimes = {"I", "II", "III", "L", "N", "Ne", "M", "K"};
  ck.require(regimes.count(s.regime) > 0, "regime",
             s.regime.empty() ? "missing: one of I, II, III, L (or a single axis N, Ne, M, K)"
                              : "\"" + s.regime + "\" is not one of I, II, III, L, N, Ne, M, K");
  ck.require(!s.scales.empty(), "scales", "missing: the scale factors, e.g. [1, 2, 4]");
  for (size_t i = 0; i < s.scales.size(); ++i)
    ck.require(s.scales[i] > 0 && std::isfinite(s.scales[i]), "scales[" + std::to_string(i) + "]", "must be > 0");
  ck.unique(s.scales, "scales");
  ck.require(!s.presets.empty(), "presets", "must name at least one of \"sp\", \"mup\", \"mssp\", \"jiang\"");
  for (size_t i = 0; i < s.presets.size(); ++i)
    ck.require(s.presets[i] == "sp" || s.presets[i] == "mup" || s.presets[i] == "mssp" || s.presets[i] == "jiang",
               "presets[" + std::to_string(i) + "]",
               "\"" + s.presets[i] + "\" is not one of \"sp\", \"mup\", \"mssp\", \"jiang\"");
  ck.unique(s.presets, "presets");
  ck.require(!s.seeds.empty(), "seeds", "must list at least one seed");
  ck.unique(s.seeds, "seeds");
  ck.require(s.tokens >= 1, "tokens",
             "missing or < 1: the token budget of each run (steps = tokens / (batch * seq_len))");
  ck.require(s.ranks >= 1, "ranks", "must be >= 1, got " + std::to_string(s.ranks));
  if (s.ep) ck.require(*s.ep >= 1, "ep", "must be >= 1");
  ck.require(!s.local.mpirun.empty() && !s.local.mpirun[0].empty(), "local.mpirun",
             "must name the mpirun command, e.g. [\"mpirun\"]");
  const SweepSlurm& sl = s.slurm;
  ck.require(sl.launcher == "srun" || sl.launcher == "mpirun" || sl.launcher == "direct", "slurm.launcher",
             "\"" + sl.launcher + "\" is not one of \"srun\", \"mpirun\", \"direct\"");
  ck.require(sl.launcher != "direct" || s.ranks == 1, "slurm.launcher",
             "\"direct\" runs one rank; ranks is " + std::to_string(s.ranks));
  ck.require(sl.gpus_per_task >= 0, "slurm.gpus_per_task", "must be >= 0");
  ck.require(sl.cpus_per_task >= 0, "slurm.cpus_per_task", "must be >= 0");
  ck.require(sl.max_parallel >= 0, "slurm.max_parallel", "must be >= 0 (0 = no limit)");
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string run_name(double scale, const std::string& preset, double lr, int64_t seed) {
  return "s" + fmt("%g", scale) + "_" + preset + "_lr" + fmt("%.3e", lr) + "_seed" + std::to_string(seed);
}

}  // namespace

std::vector<double> lr_grid(const SweepLr& lr, const std::string& origin) {
  SpecChecker ck{origin};
  const bool range = lr.min || lr.max || lr.points;
  ck.require(range || lr.values, "lr", "missing: set lr.min, lr.max and lr.points, or lr.values");
  ck.require(!(range && lr.values), "lr", "set lr.min/lr.max/lr.points or lr.values, not both");
  std::vector<double> out;
  if (lr.values) {
    out = *lr.values;
    ck.require(!out.empty(), "lr.values", "must list at least one learning rate");
    for (size_t i = 0; i < out.size(); ++i)
      ck.require(out[i] > 0 && std::isfinite(out[i]), "lr.values[" + std::to_string(i) + "]", "must be > 0");
    std::sort(out.begin(), out.end());
    ck.require(std::adjacent_find(out.begin(), out.end()) == out.end(), "lr.values", "lists a value twice");
    return out;
  }
  ck.require(lr.min.has_value(), "lr.min", "missing (with lr.max and lr.points)");
  ck.require(lr.max.has_value(), "lr.max", "missing (with lr.min and lr.points)");
  ck.require(lr.points.has_value(), "lr.points", "missing (with lr.min and lr.max)");
  ck.require(*lr.min > 0, "lr.min", "must be > 0");
  ck.require(*lr.max >= *lr.min, "lr.max", "must be >= lr.min");
  ck.require(*lr.points >= 1, "lr.points", "must be >= 1");
  ck.require(*lr.points > 1 || *lr.max == *lr.min, "lr.points", "must be >= 2 when lr.max > lr.min");
  const int64_t n = *lr.points;
  const double lo = std::log(*lr.min), hi = std::log(*lr.max);
  for (int64_t i = 0; i < n; ++i) {
    // Exact ends: the grid's edges are what the edge-of-grid warning compares against.
    if (i == 0)
      out.push_back(*lr.min);
    else if (i == n - 1)
      out.push_back(*lr.max);
    else
      out.push_back(std::exp(lo + (hi - lo) * double(i) / double(n - 1)));
  }
  return out;
}

Sweep load_sweep(const std::string& spec_path, const std::vector<std::string>& base_sets, const std::string& out) {
  Sweep s;
  s.spec_path = spec_path;
  config::TomlContext ctx{spec_path, {}};
  config::read_toml(config::parse_toml(read_file(spec_path, "sweep spec"), spec_path), ctx, s.spec);
  const SweepSpec& sp = s.spec;
  check_spec(sp, spec_path);
  s.lrs = lr_grid(sp.lr, spec_path);
  s.name = fs::path(spec_path).stem().string();

  fs::path base_path = sp.base;
  if (base_path.is_relative()) base_path = fs::path(spec_path).parent_path() / base_path;
  // Every run of a regime I, II or III sweep resolves its preset in that regime (the base
  // scale included, where the shape alone cannot tell), so the base config is read in it too.
  std::vector<std::string> sets;
  if (sp.regime == "I" || sp.regime == "II" || sp.regime == "III") sets.push_back("parameterization.regime=" + sp.regime);
  sets.insert(sets.end(), sp.set.begin(), sp.set.end());
  sets.insert(sets.end(), base_sets.begin(), base_sets.end());
  s.base = config::load_config(base_path.lexically_normal().string(), sets, 0);

  const int64_t per_step = s.base.train.batch * s.base.model.seq_len;
  s.steps = sp.tokens / per_step;
  SpecChecker{spec_path}.require(s.steps >= 1, "tokens",
                                 "budget " + std::to_string(sp.tokens) +
                                     " is less than one step of batch * seq_len = " + std::to_string(per_step) +
                                     " tokens");

  std::string dir = !out.empty() ? out : !sp.out.empty() ? sp.out : "runs/sweeps/" + s.name;
  s.dir = fs::absolute(dir).lexically_normal().string();
  if (s.dir.size() > 1 && s.dir.back() == '/') s.dir.pop_back();

  std::set<std::string> names;
  for (const std::string& preset : sp.presets)
    for (double scale : sp.scales) {
      config::Config scaled;
      try {
        scaled = scale_config(s.base, sp.regime, scale);
      } catch (const InputError& e) {
        throw InputError(spec_path + ": scales: scale " + fmt("%g", scale) + " of regime " + sp.regime +
                             " gives an invalid model: " + e.what(),
                         true);
      }
      for (double lr : s.lrs)
        for (int64_t seed : sp.seeds) {
          SweepRun r;
          r.index = int(s.runs.size());
          r.scale = scale;
          r.preset = preset;
          r.lr = lr;
          r.seed = seed;
          r.name = run_name(scale, preset, lr, seed);
          SpecChecker{spec_path}.require(names.insert(r.name).second, "lr",
                                         "two learning rates print alike (" + r.name + "): use fewer points");
          r.dir = s.dir + "/runs/" + r.name;
          config::Config& c = r.config;
          c = scaled;
          c.parameterization.preset = preset;
          c.optim.lr = lr;
          c.run.seed = seed;
          c.run.dir = r.dir;
          c.train.steps = s.steps;
          c.parallel.ep = sp.ep.value_or(s.base.parallel.ep_auto ? config::auto_ep(c.moe.experts, int(sp.ranks))
                                                                 : s.base.parallel.ep);
          config::validate(c, spec_path + " (run " + r.name + ", " + std::to_string(sp.ranks) + " rank(s))",
                           int(sp.ranks));
          s.runs.push_back(std::move(r));
        }
    }
  return s;
}

std::string describe_run(const SweepRun& r) {
  const config::Config& c = r.config;
  char buf[512];
  std::snprintf(buf, sizeof buf, "[%3d] scale %-5g %-4s lr %.3e seed %-3lld N=%lld Ne=%lld M=%lld K=%lld L=%lld  %s",
                r.index, r.scale, r.preset.c_str(), r.lr, (long long)r.seed, (long long)c.model.width,
                (long long)c.moe.expert_width, (long long)c.moe.experts, (long long)c.moe.top_k,
                (long long)c.model.depth, r.dir.c_str());
  return buf;
}

bool run_finished(const std::string& run_dir, int64_t steps) {
  // The last record, not any: metrics of an earlier, longer attempt (another token budget,
  // same directory) also hold step `steps`, under another LR schedule.
  std::vector<MetricsRecord> recs = read_metrics(run_dir + "/" + kMetricsFile);
  return !recs.empty() && recs.back().step == steps;
}

void mark_run(const std::string& run_dir, const char* marker, const std::string& text) {
  std::error_code ec;
  for (const char* m : {kFinishedMarker, kFailedMarker, kInterruptedMarker})
    if (std::string(m) != marker) fs::remove(run_dir + "/" + m, ec);
  write_output_atomically(run_dir + "/" + marker, text + "\n");
}

std::string reset_if_not_resumable(const SweepRun& r) {
  const run::RunDirLock lock(r.dir);  // no other job may be using the run while it is judged
  try {
    run::plan_start(r.dir, r.config, {"auto", false, {}});
    return "";
  } catch (const InputError& e) {
    run::wipe_run(r.dir);
    return e.what();
  }
}

void write_sweep_files(const Sweep& s) {
  fs::create_directories(s.dir);
  write_output_atomically(s.dir + "/spec.toml", read_file(s.spec_path, "sweep spec"));
  std::string runs;
  for (const SweepRun& r : s.runs) {
    fs::create_directories(r.dir);
    std::ostringstream f;
    f << "# Resolved by moe sweep from " << s.spec_path << ": scale " << r.scale << ", preset " << r.preset << ", lr "
      << r.lr << ", seed " << r.seed << "\n"
      << config::to_toml(r.config);
    write_output_atomically(r.dir + "/" + kRunConfigFile, f.str());
    runs += std::to_string(s.steps) + "\t" + r.dir + "\n";
  }
  write_output_atomically(s.dir + "/runs.txt", runs);
}

}  // namespace moe::train
