// LR-transfer sweeps: spec parsing (strict, errors name the key and the file), the LR grid,
// expansion into resolved configs through scale_config, reading runs back (finished, failed,
// diverged), and the per-preset summary (optimum, edge, drift, monotonicity).
#include "src/train/sweep.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "src/core/error.h"
#include "src/train/coord_check.h"
#include "src/train/run_metrics.h"
#include "src/train/sweep_report.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/moe-sweep-test-XXXXXX";
    MOE_CHECK(mkdtemp(tmpl) != nullptr, "mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

const char* const kBase = R"(
[model]
vocab = 64
seq_len = 8
width = 16
heads = 2
depth = 2
[moe]
experts = 4
top_k = 2
expert_width = 16
[parameterization]
base = { width = 16, expert_width = 16, experts = 4, top_k = 2, depth = 2 }
[train]
batch = 4
)";

// A valid spec; `extra` is appended at the top level (before [lr]).
std::string spec_text(const std::string& extra = "", const std::string& lr = "min = 1e-3\nmax = 1e-1\npoints = 3\n",
                      const std::string& base = "cfg/base.toml") {
  return "base = \"" + base +
         "\"\nregime = \"III\"\nscales = [1, 2]\npresets = [\"sp\", \"mssp\"]\n"
         "seeds = [1, 2]\ntokens = 320\nout = \"sweep_out\"\n" +
         extra + "[lr]\n" + lr;
}

// Loads a spec expecting an InputError; returns its message.
std::string SpecError(const TempDir& d, const std::string& text, const std::vector<std::string>& sets = {}) {
  d.write("cfg/base.toml", kBase);
  std::string spec = d.write("spec.toml", text);
  try {
    train::load_sweep(spec, sets);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError for:\n" << text;
  return "";
}

TEST(SweepSpec, UnknownKeysAndWrongTypesNameTheKeyAndFile) {
  TempDir d;
  std::string spec = d.path() + "/spec.toml";
  std::string m = SpecError(d, spec_text("tokenz = 5\n"));
  EXPECT_TRUE(Contains(m, spec)) << m;
  EXPECT_TRUE(Contains(m, "tokenz: unknown key"));
  m = SpecError(d, spec_text("", "min = 1e-3\nmax = 1e-1\npointz = 3\n"));
  EXPECT_TRUE(Contains(m, "lr.pointz: unknown key"));
  m = SpecError(d, spec_text("[slurm]\npartition = \"gpu\"\n"));
  EXPECT_TRUE(Contains(m, "slurm.partition: unknown key"));
  m = SpecError(
      d, "base = \"cfg/base.toml\"\nregime = \"III\"\nscales = [1, \"2\"]\ntokens = 320\n[lr]\nvalues = [1e-3]\n");
  EXPECT_TRUE(Contains(m, "scales[1]: expected a number, got a string \"2\""));
  m = SpecError(d, spec_text("ranks = 1.5\n"));
  EXPECT_TRUE(Contains(m, "ranks: expected an integer, got a float"));
  m = SpecError(d, spec_text("set = \"optim.lr=1\"\n"));
  EXPECT_TRUE(Contains(m, "set: expected an array"));
}

TEST(SweepSpec, MissingAndInvalidValuesAreErrors) {
  TempDir d;
  EXPECT_TRUE(
      Contains(SpecError(d, "regime = \"III\"\nscales = [1]\ntokens = 32\n[lr]\nvalues = [1e-3]\n"), "base: missing"));
  EXPECT_TRUE(Contains(SpecError(d, spec_text("", "")), "lr: missing"));
  EXPECT_TRUE(
      Contains(SpecError(d, spec_text("", "min = 1e-3\nmax = 1e-1\npoints = 3\nvalues = [1e-2]\n")), "not both"));
  EXPECT_TRUE(Contains(SpecError(d, spec_text("", "min = 1e-3\npoints = 3\n")), "lr.max: missing"));
  EXPECT_TRUE(
      Contains(SpecError(d, spec_text("", "min = 1e-1\nmax = 1e-3\npoints = 3\n")), "lr.max: must be >= lr.min"));
  std::string bad_regime = spec_text();
  bad_regime.replace(bad_regime.find("\"III\""), 5, "\"IV\"");
  EXPECT_TRUE(Contains(SpecError(d, bad_regime), "regime: \"IV\" is not one of"));
  std::string bad_preset = spec_text();
  bad_preset.replace(bad_preset.find("\"sp\""), 4, "\"ntk\"");
  EXPECT_TRUE(Contains(SpecError(d, bad_preset), "presets[0]: \"ntk\""));
  std::string no_tokens = spec_text();
  no_tokens.replace(no_tokens.find("tokens = 320"), 12, "tokens = 31");  // batch 4 x seq_len 8 = 32
  EXPECT_TRUE(Contains(SpecError(d, no_tokens), "tokens: budget 31 is less than one step"));
  // The layout of every run is checked against the ranks: batch 4 over 3 ranks does not divide.
  EXPECT_TRUE(Contains(SpecError(d, spec_text("ranks = 3\n")), "train.batch"));
  EXPECT_TRUE(Contains(SpecError(d, spec_text("ranks = 2\n[slurm]\nlauncher = \"direct\"\n")), "slurm.launcher"));
  // A base config error names the base config file.
  EXPECT_TRUE(Contains(SpecError(d, spec_text(), {"model.widht=3"}), "model.widht: unknown key"));
}

TEST(SweepSpec, LrGridIsLogSpacedWithExactEnds) {
  train::SweepLr lr;
  lr.min = 1e-4;
  lr.max = 1e-1;
  lr.points = 4;
  std::vector<double> g = train::lr_grid(lr, "x.toml");
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g.front(), 1e-4);
  EXPECT_EQ(g.back(), 1e-1);
  for (size_t i = 1; i < g.size(); ++i) EXPECT_NEAR(std::log10(g[i] / g[i - 1]), 1.0, 1e-12);
  train::SweepLr v;
  v.values = std::vector<double>{3e-2, 1e-3, 1e-2};
  EXPECT_EQ(train::lr_grid(v, "x.toml"), (std::vector<double>{1e-3, 1e-2, 3e-2}));
}

TEST(SweepSpec, ExpandsOneResolvedConfigPerRunThroughScaleConfig) {
  TempDir d;
  d.write("cfg/base.toml", kBase);
  std::string spec = d.write("specs/s.toml", spec_text("set = [\"optim.warmup=3\"]\n",
                                                       "min = 1e-3\nmax = 1e-1\npoints = 3\n", "../cfg/base.toml"));
  train::Sweep s = train::load_sweep(spec, {"train.log_every=2"}, d.path() + "/out");
  EXPECT_EQ(s.steps, 10);                       // 320 tokens / (batch 4 x seq_len 8)
  ASSERT_EQ(s.runs.size(), 2u * 2u * 3u * 2u);  // presets x scales x lrs x seeds
  std::set<std::string> dirs;
  for (size_t i = 0; i < s.runs.size(); ++i) {
    const train::SweepRun& r = s.runs[i];
    EXPECT_EQ(r.index, int(i));
    const config::Config expect = train::scale_config(s.base, "III", r.scale);
    EXPECT_EQ(r.config.model.width, expect.model.width);
    EXPECT_EQ(r.config.model.heads, expect.model.heads);
    EXPECT_EQ(r.config.moe.expert_width, expect.moe.expert_width);
    EXPECT_EQ(r.config.moe.experts, expect.moe.experts);
    EXPECT_EQ(r.config.moe.top_k, expect.moe.top_k);
    EXPECT_EQ(r.config.parameterization.preset, r.preset);
    EXPECT_EQ(r.config.optim.lr, r.lr);
    EXPECT_EQ(r.config.run.seed, r.seed);
    EXPECT_EQ(r.config.train.steps, 10);
    EXPECT_EQ(r.config.optim.warmup, 3);     // the spec's set
    EXPECT_EQ(r.config.train.log_every, 2);  // the command line's --set
    EXPECT_EQ(r.config.run.dir, r.dir);
    EXPECT_EQ(r.dir.rfind(d.path() + "/out/runs/", 0), 0u) << r.dir;
    dirs.insert(r.dir);
  }
  EXPECT_EQ(dirs.size(), s.runs.size());
  EXPECT_EQ(s.runs[0].config.model.width, 16);
  EXPECT_EQ(s.runs.back().config.model.width, 32);
  EXPECT_EQ(s.runs.back().config.moe.experts, 8);
  EXPECT_EQ(s.runs.back().config.moe.top_k, 4);

  train::write_sweep_files(s);
  std::ifstream runs(s.dir + "/runs.txt");
  std::string line;
  int n = 0;
  while (std::getline(runs, line)) {
    EXPECT_EQ(line, "10\t" + s.runs[n].dir);
    // The resolved config on disk is the run's config.
    config::Config back = config::load_config(s.runs[n].dir + "/" + train::kRunConfigFile, {});
    EXPECT_EQ(config::to_toml(back), config::to_toml(s.runs[n].config));
    ++n;
  }
  EXPECT_EQ(n, int(s.runs.size()));
}

TEST(RunMetrics, ReadsTopLevelNumbersAndSkipsTornLines) {
  std::map<std::string, double> v;
  ASSERT_TRUE(train::parse_metrics_line(
      R"({"step":3,"loss":null,"ce":2.5,"lr":{"embed":0.1},"expert_load":[{"layer":0}],"name":"a}b","skipped":false})",
      v));
  EXPECT_EQ(v.at("step"), 3);
  EXPECT_TRUE(std::isnan(v.at("loss")));
  EXPECT_EQ(v.at("ce"), 2.5);
  EXPECT_EQ(v.count("embed"), 0u);  // nested
  EXPECT_EQ(v.count("layer"), 0u);
  EXPECT_EQ(v.at("skipped"), 0);
  EXPECT_FALSE(train::parse_metrics_line(R"({"step":4,"loss":2.)", v));
  EXPECT_FALSE(train::parse_metrics_line(R"({"step":4,"lr":{"embed":0.1})", v));
}

// Writes a run directory: metrics lines with (step, ce) and optional markers and log.
train::SweepRun make_run(const TempDir& d, const std::string& name, const std::vector<std::pair<int, std::string>>& ce,
                         const std::string& marker = "", const std::string& log = "") {
  train::SweepRun r;
  r.name = name;
  r.dir = d.path() + "/" + name;
  r.preset = "sp";
  fs::create_directories(r.dir);
  std::ofstream m(r.dir + "/metrics.jsonl");
  for (auto& [step, v] : ce)
    m << "{\"step\":" << step << ",\"loss\":" << v << ",\"ce\":" << v << ",\"tokens_per_s\":" << 100 * step << "}\n";
  if (!marker.empty()) std::ofstream(r.dir + "/" + marker) << "exit 1\n";
  if (!log.empty()) std::ofstream(r.dir + "/" + train::kRunLog) << log;
  return r;
}

TEST(SweepReport, JudgesByTheFinalValidationLossWhenLogged) {
  TempDir d;
  train::SweepRun run = make_run(d, "val", {{1, "5.5"}, {10, "3.0"}});
  std::ofstream(run.dir + "/metrics.jsonl", std::ios::app)
      << "{\"step\":10,\"loss\":3.1,\"ce\":3.1,\"val_loss\":3.4,\"tokens_per_s\":1000}\n";
  train::RunResult r = train::read_run_result(run, 10);
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(r.judged_by, "val");
  EXPECT_EQ(r.final_loss, 3.4);
  EXPECT_EQ(r.final_train_loss, 3.1);
  const std::string summary = train::format_summary({r}, train::summarize({r}));
  EXPECT_TRUE(Contains(summary, "held-out validation cross-entropy"));
  train::RunResult t = train::read_run_result(make_run(d, "train", {{1, "5.5"}, {10, "3.0"}}), 10);
  EXPECT_EQ(t.judged_by, "train");
  EXPECT_TRUE(Contains(train::format_summary({t}, train::summarize({t})), "WARNING: 1 finished run(s) logged no val_loss"));
}

TEST(SweepReport, ReadsFinishedFailedDivergedAndPendingRuns) {
  TempDir d;
  train::SweepRun ok = make_run(d, "ok", {{1, "5.5"}, {5, "4.0"}, {10, "3.0"}});
  std::ofstream(ok.dir + "/metrics.jsonl", std::ios::app) << "{\"step\":11,\"ce\":";  // torn line
  EXPECT_TRUE(train::run_finished(ok.dir, 10));
  EXPECT_FALSE(train::run_finished(ok.dir, 11));
  EXPECT_FALSE(train::run_finished(ok.dir, 5));  // an earlier, longer attempt's step 5 is not the end
  train::RunResult r = train::read_run_result(ok, 10);
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(r.final_loss, 3.0);
  EXPECT_EQ(r.initial_loss, 5.5);
  EXPECT_FALSE(r.diverged);
  EXPECT_DOUBLE_EQ(r.tokens_per_s, (500.0 + 1000.0) / 2);  // the first step is left out

  EXPECT_TRUE(train::read_run_result(make_run(d, "up", {{1, "5.5"}, {10, "5.6"}}), 10).diverged);
  train::RunResult nan = train::read_run_result(make_run(d, "nan", {{1, "5.5"}, {10, "null"}}), 10);
  EXPECT_EQ(nan.status, "finished");
  EXPECT_TRUE(nan.diverged);

  train::RunResult stopped = train::read_run_result(
      make_run(d, "stopped", {{1, "5.5"}}, train::kFailedMarker, "moe: error: non-finite loss at step 4\n"), 10);
  EXPECT_EQ(stopped.status, "failed");
  EXPECT_TRUE(stopped.diverged);
  EXPECT_TRUE(std::isnan(stopped.final_loss));
  train::RunResult crashed =
      train::read_run_result(make_run(d, "crashed", {{1, "5.5"}}, train::kFailedMarker, "killed\n"), 10);
  EXPECT_EQ(crashed.status, "failed");
  EXPECT_FALSE(crashed.diverged);
  train::RunResult pending = train::read_run_result(make_run(d, "pending", {{1, "5.5"}}), 10);
  EXPECT_EQ(pending.status, "pending");
  EXPECT_FALSE(pending.diverged);

  std::string csv = train::results_csv({r, stopped});
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "index,scale,preset,lr,seed,status,steps,last_step,initial_loss,final_loss,judged_by,final_train_loss,"
            "diverged,tokens_per_s,run_dir");
  EXPECT_TRUE(Contains(csv, ",finished,10,10,5.5,3,train,3,0,750.0," + ok.dir + "\n"));
  EXPECT_TRUE(Contains(csv, ",failed,10,1,5.5,nan,,nan,1,"));
}

train::RunResult result(const std::string& preset, double scale, double lr, int64_t seed, double loss,
                        bool diverged = false) {
  train::RunResult r;
  r.preset = preset;
  r.scale = scale;
  r.lr = lr;
  r.seed = seed;
  r.status = "finished";
  r.final_loss = loss;
  r.diverged = diverged;
  return r;
}

TEST(SweepReport, SummaryFindsOptimumDriftEdgeAndMonotonicity) {
  const double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::vector<train::RunResult> rs;
  // "sp": the optimum moves from 1e-2 (scale 1) to 1e-3 (scale 4), on the grid's lower edge;
  // at lr 1e-1 scale 4 diverges, so loss does not improve with scale there.
  const double lrs[] = {1e-3, 1e-2, 1e-1};
  const double s1[] = {3.0, 2.0, 2.5}, s2[] = {2.6, 1.9, 2.4}, s4[] = {1.5, 1.8, kNaN};
  for (int i = 0; i < 3; ++i) {
    rs.push_back(result("sp", 1, lrs[i], 1, s1[i]));
    rs.push_back(result("sp", 2, lrs[i], 1, s2[i]));
    rs.push_back(result("sp", 4, lrs[i], 1, s4[i], std::isnan(s4[i])));
  }
  // "mssp": two seeds averaged; seed 2 moves the scale-2 optimum only through the mean.
  for (int i = 0; i < 3; ++i) {
    rs.push_back(result("mssp", 1, lrs[i], 1, s1[i]));
    rs.push_back(result("mssp", 1, lrs[i], 2, s1[i]));
    rs.push_back(result("mssp", 2, lrs[i], 1, i == 1 ? 1.8 : 1.9));
    rs.push_back(result("mssp", 2, lrs[i], 2, i == 1 ? 1.8 : 1.6));  // means 1.75, 1.8, 1.75
  }
  std::vector<train::PresetSummary> sum = train::summarize(rs);
  ASSERT_EQ(sum.size(), 2u);
  const train::PresetSummary& sp = sum[0];
  EXPECT_EQ(sp.preset, "sp");
  EXPECT_EQ(sp.scales, (std::vector<double>{1, 2, 4}));
  EXPECT_EQ(sp.best, (std::vector<int>{1, 1, 0}));
  EXPECT_EQ(sp.on_edge, (std::vector<bool>{false, false, true}));
  ASSERT_TRUE(sp.drift_decades.has_value());
  EXPECT_NEAR(*sp.drift_decades, -1.0, 1e-12);
  EXPECT_EQ(sp.monotone, (std::vector<bool>{true, true, false}));
  EXPECT_TRUE(std::isinf(sp.loss[2][2]));
  ASSERT_TRUE(sp.transfer_regret.has_value());
  EXPECT_NEAR(*sp.transfer_regret, 1.8 - 1.5, 1e-12);

  const train::PresetSummary& ms = sum[1];
  EXPECT_DOUBLE_EQ(ms.loss[1][0], 1.75);
  EXPECT_DOUBLE_EQ(ms.loss[1][1], 1.8);
  EXPECT_EQ(ms.best, (std::vector<int>{1, 0}));  // first of the tied minima
  EXPECT_NEAR(*ms.drift_decades, -1.0, 1e-12);
  EXPECT_EQ(ms.monotone, (std::vector<bool>{true, true, true}));

  std::string text = train::format_summary(rs, sum);
  EXPECT_TRUE(Contains(text, "preset sp"));
  EXPECT_TRUE(Contains(text, "drift of the optimal lr, scale 1 -> 4: -1.00 decades"));
  EXPECT_TRUE(Contains(text, "optimal lr at scale 4: 1.000e-03 (loss 1.5000)  WARNING: on the edge"));
  EXPECT_TRUE(Contains(text, "monotonically with scale at every lr: no (not at lr 1.000e-01)"));
  EXPECT_TRUE(Contains(text, "div"));
}

TEST(SweepReport, DivergedSeedMakesThePointDivergedAndNoOptimumMeansNoDrift) {
  std::vector<train::RunResult> rs = {result("mup", 1, 1e-2, 1, 2.0), result("mup", 1, 1e-2, 2, 9.0, true),
                                      result("mup", 2, 1e-2, 1, 9.0, true)};
  train::PresetSummary s = train::summarize(rs)[0];
  EXPECT_TRUE(std::isinf(s.loss[0][0]));
  EXPECT_EQ(s.best, (std::vector<int>{-1, -1}));
  EXPECT_FALSE(s.drift_decades.has_value());
  EXPECT_TRUE(Contains(train::format_summary(rs, {s}), "drift of the optimal lr: unknown"));
}

}  // namespace
}  // namespace moe::test

namespace moe::test {
namespace {

TEST(SweepReport, SeedNoiseAndEachSeedsOptimum) {
  // Two seeds that disagree by +-0.01 at every point (pooled std 0.01 * sqrt(2)), and whose own
  // optima differ at scale 2.
  std::vector<train::RunResult> rs = {
      result("mup", 1, 1e-3, 1, 3.01), result("mup", 1, 1e-3, 2, 2.99),
      result("mup", 1, 1e-2, 1, 2.51), result("mup", 1, 1e-2, 2, 2.49),
      result("mup", 2, 1e-3, 1, 2.39), result("mup", 2, 1e-3, 2, 2.41),
      result("mup", 2, 1e-2, 1, 2.41), result("mup", 2, 1e-2, 2, 2.39),
  };
  const std::vector<train::PresetSummary> s = train::summarize(rs);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seeds, (std::vector<int64_t>{1, 2}));
  ASSERT_TRUE(s[0].seed_std.has_value());
  EXPECT_NEAR(*s[0].seed_std, 0.01 * std::sqrt(2.0), 1e-12);
  ASSERT_EQ(s[0].seed_best_lr.size(), 2u);
  EXPECT_EQ(s[0].seed_best_lr[0], (std::vector<double>{1e-2, 1e-3}));
  EXPECT_EQ(s[0].seed_best_lr[1], (std::vector<double>{1e-2, 1e-2}));
  const std::string text = train::format_summary(rs, s);
  EXPECT_TRUE(Contains(text, "each seed's optimal lr per scale: seed 1 1.000e-02 1.000e-03; seed 2 1.000e-02 1.000e-02"));
  EXPECT_TRUE(Contains(text, "seed noise: one run's final loss varies by 0.0141"));
}

}  // namespace
}  // namespace moe::test
