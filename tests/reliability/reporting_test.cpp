// What a run says about itself (the real binary): the first run just works (parallel.ep =
// "auto", printed), warnings for dropped tokens and reused data windows in the progress line and
// metrics.jsonl, and an eval that names the split it measured, refuses to reuse windows and
// accepts routing-only overrides.
#include <gtest/gtest.h>

#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kLimit = 120;

TEST(FirstRun, DefaultConfigWithoutALauncher) {
  const std::string dir = scratch_dir("report_default");
  // The shipped config, no mpirun (world size 1): ep = "auto" resolves to 1.
  Result r = run(moe_cmd(0, {"train", "--config", std::string(MOE_SOURCE_DIR) + "/configs/default.toml", "--set",
                             "run.dir=" + dir + "/run", "--set", "train.steps=2"}),
                 dir + "/log", kLimit);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("moe train: 1 rank(s), ep=1 (auto"), std::string::npos) << r.out;
  // 4 ranks, M = 4: the largest divisor of M that divides 4.
  Result four = run(moe_cmd(4, train_base(dir + "/run4", {"--set", "parallel.ep=auto"})), dir + "/log4", kLimit);
  EXPECT_EQ(four.code, 0) << four.err;
  EXPECT_NE(four.out.find("moe train: 4 rank(s), ep=4 (auto"), std::string::npos) << four.out;
  fs::remove_all(dir);
}

TEST(Warnings, DroppedTokensAndReusedWindows) {
  const std::string dir = scratch_dir("report_warn");
  Result drop = run(moe_cmd(1, train_base(dir + "/drop", {"--set", "moe.capacity_factor=1e-9"})), dir + "/log", kLimit);
  EXPECT_EQ(drop.code, 0) << drop.err;
  EXPECT_NE(drop.out.find("| warning: "), std::string::npos) << drop.out;
  EXPECT_NE(drop.out.find("of token assignments dropped (moe.capacity_factor = 1e-09)"), std::string::npos) << drop.out;
  const std::string metrics = slurp(dir + "/drop/metrics.jsonl");
  EXPECT_NE(metrics.find("\"warnings\":[\"") , std::string::npos) << metrics;

  // data/good.bin holds few windows of 17 tokens: 3 steps of 8 sequences go round more than once.
  Result reuse = run(moe_cmd(1, train_base(dir + "/reuse", {"--set", "data.kind=llmc", "--set",
                                                        "data.path=" + kInputs + "/data/good.bin", "--set",
                                                        "train.steps=6"})),
                     dir + "/log", kLimit);
  EXPECT_EQ(reuse.code, 0) << reuse.err;
  EXPECT_NE(reuse.out.find("(windows are reused)"), std::string::npos) << reuse.out;
  EXPECT_NE(reuse.out.find("| warning: data windows reused (epoch "), std::string::npos) << reuse.out;
  EXPECT_NE(slurp(dir + "/reuse/metrics.jsonl").find("data windows reused"), std::string::npos);

  // A healthy run carries no warning.
  Result clean = run(moe_cmd(1, train_base(dir + "/clean")), dir + "/log", kLimit);
  EXPECT_EQ(clean.code, 0) << clean.err;
  EXPECT_EQ(clean.out.find("warning"), std::string::npos) << clean.out;
  EXPECT_NE(slurp(dir + "/clean/metrics.jsonl").find("\"warnings\":[]"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Eval, SaysWhatItMeasured) {
  const std::string dir = scratch_dir("report_eval"), good = kInputs + "/data/good.bin";
  ASSERT_EQ(run(moe_cmd(1, train_base(dir + "/run", {"--set", "data.kind=llmc", "--set", "data.path=" + good})),
                dir + "/log", kLimit)
                .code,
            0);
  for (int np : {1, 4}) {
    const std::string where = std::to_string(np) + " rank(s)";
    // The training files themselves: split "train", never "val".
    Result same = run(moe_cmd(np, {"eval", "--checkpoint", dir + "/run", "--batches", "1", "--out", dir + "/e.json"}),
                      dir + "/log", kLimit);
    EXPECT_EQ(same.code, 0) << where << same.err;
    EXPECT_NE(same.out.find("split train"), std::string::npos) << where << same.out;
    EXPECT_NE(slurp(dir + "/e.json").find("\"split\":\"train\""), std::string::npos) << slurp(dir + "/e.json");
    // More sequences than windows: refused, not silently evaluated twice.
    Result reuse = run(moe_cmd(np, {"eval", "--checkpoint", dir + "/run", "--batches", "1000"}), dir + "/log", kLimit);
    EXPECT_EQ(reuse.code, kExitBadInput) << where << reuse.err;
    EXPECT_EQ(count_prefixed(reuse.err, "moe: error: "), 1) << reuse.err;
    EXPECT_NE(reuse.err.find("windows would be evaluated twice"), std::string::npos) << reuse.err;
    // A routing-only setting may change at eval.
    Result cap = run(moe_cmd(np, {"eval", "--checkpoint", dir + "/run", "--batches", "1", "--set",
                                  "moe.capacity_factor=1.0"}),
                     dir + "/log", kLimit);
    EXPECT_EQ(cap.code, 0) << where << cap.err;
  }
  // The synthetic language's eval stream is disjoint from training: "val".
  ASSERT_EQ(run(moe_cmd(1, train_base(dir + "/syn")), dir + "/log", kLimit).code, 0);
  Result syn = run(moe_cmd(1, {"eval", "--checkpoint", dir + "/syn", "--batches", "1"}), dir + "/log", kLimit);
  EXPECT_EQ(syn.code, 0) << syn.err;
  EXPECT_NE(syn.out.find("split val"), std::string::npos) << syn.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
