// The numerical-fault and resource policies end to end on the real binary: a NaN injected on one
// of 4 ranks under train.nonfinite = "stop" (exit 3, one line, no MPI_Abort, the last checkpoint
// loadable and resumable) and "skip" (the step is logged as skipped and the run finishes); a
// token surge onto one expert (dropless buffers grow, a capacity drops the excess and says so);
// and the memory estimate against the peak RSS it predicts.
#include <gtest/gtest.h>

#include <regex>

#include "src/ckpt/directory.h"
#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

std::string temp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "moe_num_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<std::string> train_args(const std::string& run_dir, std::vector<std::string> more) {
  std::vector<std::string> a = {"train", "--config", kInputs + "/base.toml", "--set",
                                "run.dir=" + run_dir};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// The numbers after "key": in a metrics line, in order of appearance.
std::vector<double> json_numbers(const std::string& line, const std::string& key) {
  std::vector<double> out;
  const std::string k = "\"" + key + "\":";
  for (size_t i = line.find(k); i != std::string::npos; i = line.find(k, i + 1))
    out.push_back(std::atof(line.c_str() + i + k.size()));
  return out;
}

TEST(NonFiniteCli, StopExitsThreeAndKeepsTheLastCheckpoint) {
  const std::string dir = temp_dir("stop"), run = dir + "/run";
  Result r = moe::test::run(
      moe_cmd(4, train_args(run, {"--set", "parallel.ep=2", "--set", "train.steps=50", "--set",
                                  "checkpoint.every=2", "--set", "train.nonfinite=stop", "--set",
                                  "debug.inject_nan_step=5", "--set", "debug.inject_nan_rank=3"})),
      dir + "/train", 120);
  std::printf("stop: exit %d after %.2f s; stderr:\n%s", r.code, r.seconds, r.err.c_str());
  EXPECT_EQ(r.code, kExitNonFinite);
  EXPECT_EQ(count_prefixed(r.err, "moe: error: "), 1) << r.err;
  EXPECT_TRUE(r.err.find("moe: error: non-finite gradient (global norm nan) at step 5") !=
              std::string::npos)
      << r.err;
  EXPECT_TRUE(r.err.find("the last checkpoint is " + run + "/checkpoints/step_00000004 (step 4)") !=
              std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("MPI_ABORT"), std::string::npos) << "an agreed stop must not abort";
  for (const std::string& l : split_lines(r.err))
    EXPECT_TRUE(l.rfind("moe: error: ", 0) == 0 || is_mpirun_notice(l)) << "unexpected: " << l;
  auto all = ckpt::list_checkpoints(run + "/checkpoints");
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().step, 4);
  EXPECT_EQ(ckpt::resolve_checkpoint(run), all.back().dir);

  // The checkpoint loads (eval on 1 rank) and the run resumes from it (no injection now).
  Result e = moe::test::run(moe_cmd(1, {"eval", "--checkpoint", run, "--batches", "1"}),
                            dir + "/eval", 60);
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("(step 4)"), std::string::npos) << e.out;
  Result t = moe::test::run(
      moe_cmd(4, {"train", "--config", kInputs + "/base.toml", "--resume", run, "--set",
                  "run.dir=" + run, "--set", "parallel.ep=2", "--set", "train.steps=6", "--allow-change",
                  "train.steps"}),
      dir + "/resume", 60);
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("at step 4"), std::string::npos) << t.out;
  fs::remove_all(dir);
}

TEST(NonFiniteCli, SkipLogsTheStepAndFinishes) {
  const std::string dir = temp_dir("skip"), run = dir + "/run";
  Result r = moe::test::run(
      moe_cmd(4, train_args(run, {"--set", "parallel.ep=2", "--set", "train.steps=6", "--set",
                                  "train.log_every=100", "--set", "train.nonfinite=skip", "--set",
                                  "debug.inject_nan_step=3", "--set", "debug.inject_nan_rank=1",
                                  "--set", "debug.inject_nan_into=loss", "--set",
                                  "train.peak_tflops=0.5"})),
      dir + "/train", 120);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("non-finite: skipped"), std::string::npos) << r.out;
  int skipped = 0, lines = 0;
  for (const std::string& l : split_lines(slurp(run + "/metrics.jsonl"))) {
    ++lines;
    // The model FLOP rate per rank, and MFU against the configured peak.
    const auto tflops = json_numbers(l, "model_tflops_per_rank"), mfu = json_numbers(l, "mfu");
    ASSERT_EQ(tflops.size(), 1u) << l;
    ASSERT_EQ(mfu.size(), 1u) << l;
    EXPECT_GT(tflops[0], 0) << l;
    EXPECT_NEAR(mfu[0], tflops[0] / 0.5, 1e-7 * mfu[0]) << l;  // 9 digits in the JSON
    const bool s = l.find("\"skipped\":true") != std::string::npos;
    skipped += s;
    if (s) EXPECT_EQ(json_numbers(l, "step").at(0), 3) << l;
  }
  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(lines, 3) << "steps 1, 3 (skipped) and 6";
  fs::remove_all(dir);
}

// All tokens to experts 0 and 1 (both on EP rank 0 of 4): that rank receives every row.
TEST(TokenSurge, DroplessBuffersGrowAndCapacityReportsDrops) {
  const std::string dir = temp_dir("surge");
  for (double cf : {0.0, 1.0}) {
    const std::string run = dir + "/cf" + std::to_string(int(cf));
    Result r = moe::test::run(
        moe_cmd(4, train_args(run, {"--set", "parallel.ep=4", "--set", "moe.experts=8", "--set",
                                    "parameterization.base.experts=8", "--set",
                                    "moe.capacity_factor=" + std::to_string(cf), "--set",
                                    "debug.route_all_to_expert=0", "--set", "train.steps=3"})),
        dir + "/train" + std::to_string(int(cf)), 120);
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = split_lines(slurp(run + "/metrics.jsonl"));
    ASSERT_EQ(lines.size(), 3u);
    for (const std::string& l : lines) {
      EXPECT_TRUE(json_numbers(l, "mfu").empty()) << "no train.peak_tflops, no MFU: " << l;
      // expert_load: per layer max_over_mean = M / K = 4; then rank_tokens' max_over_mean.
      auto mom = json_numbers(l, "max_over_mean");
      ASSERT_EQ(mom.size(), 3u) << l;
      EXPECT_NEAR(mom[0], 4.0, 1e-9) << l;
      EXPECT_NEAR(mom[1], 4.0, 1e-9) << l;
      auto dropped = json_numbers(l, "dropped");
      ASSERT_EQ(dropped.size(), 2u);
      if (cf == 0) {
        // Dropless: EP rank 0 processed all rows (4x the mean over 4 ranks), nothing dropped.
        EXPECT_NEAR(mom[2], 4.0, 1e-9) << l;
        EXPECT_EQ(dropped[0], 0.0);
      } else {
        // Capacity = tokens * K / M per expert: experts 0 and 1 keep 2/8 of 2 x tokens.
        EXPECT_NEAR(dropped[0], 0.75, 1e-9) << l;
        EXPECT_NEAR(dropped[1], 0.75, 1e-9) << l;
      }
      EXPECT_EQ(l.find("nan"), std::string::npos) << l;
    }
  }
  fs::remove_all(dir);
}

// The estimate printed by `moe train` against the peak RSS of a singleton run of a model big
// enough that the model dominates the runtime: conservative (at least 0.9 x the peak), but not
// wasteful (at most 1.6 x), so that the check neither lets an OOM through nor refuses runs that
// fit.
TEST(MemoryEstimateCli, MatchesPeakRss) {
  const std::string dir = temp_dir("rss");
  Result r = moe::test::run(
      moe_cmd(0, train_args(dir + "/run",
                            {"--set", "model.width=256",   "--set", "model.heads=4",
                             "--set", "model.seq_len=128", "--set", "model.vocab=2048",
                             "--set", "model.depth=4",     "--set", "moe.expert_width=512",
                             "--set", "moe.experts=16",    "--set", "train.batch=16",
                             "--set", "train.steps=2",     "--set", "checkpoint.every=100"})),
      dir + "/train", 300);
  ASSERT_EQ(r.code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(r.out, m, std::regex(R"(memory per rank: estimate ([0-9.]+) (MiB|GiB))")))
      << r.out;
  const double est = std::stod(m[1]) * (m[2] == "GiB" ? 1024 * 1024 : 1024);  // KiB
  const double rss = double(r.max_rss_kb);
  std::printf("memory estimate %.0f MiB, peak RSS %.0f MiB (ratio %.2f)\n", est / 1024, rss / 1024,
              est / rss);
  EXPECT_GT(est / rss, 0.9);
  EXPECT_LT(est / rss, 1.6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
