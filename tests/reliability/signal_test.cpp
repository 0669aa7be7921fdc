// Signals end a segment, never a run (the real binary, alone and under mpirun): SIGTERM, SIGINT
// and SIGUSR1 stop every rank at one step boundary with a complete checkpoint and exit 5, and
// `--resume auto` then continues bit for bit (the same losses and the same final shard bytes as
// an uninterrupted run); a second signal, or a stop longer than run.stop_timeout_s, exits at
// once without touching `latest`; signals outside run.stop_signals keep their default action.
// mpirun answers SIGTERM and SIGINT itself (it waits odls_base_sigkill_timeout seconds, signals
// the ranks, kills them as long again later and exits 1); SIGUSR1 it forwards at once.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>

#include "src/ckpt/directory.h"
#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr int kSteps = 300;  // the signal comes once 20 steps are logged
constexpr double kLimit = 180;

std::vector<std::string> layout(int np) { return {"--set", "parallel.ep=" + std::to_string(np > 0 ? np : 1)}; }

const char* name_of(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1"; }

TEST(StopSignal, EachSignalStopsWithACheckpointAndResumeContinuesBitForBit) {
  const std::string dir = scratch_dir("stop_signal");
  const std::vector<std::string> steps = {"--set", "train.steps=" + std::to_string(kSteps), "--set", "train.log_every=1"};
  std::printf("%-8s %-8s %5s %9s %6s %s\n", "launcher", "signal", "exit", "seconds", "ckpt", "continuation");
  for (int np : {0, 2}) {
    const std::string ref = dir + "/ref" + std::to_string(np);
    Result r0 = run(moe_cmd(np, train_base(ref, with(steps, layout(np)))), ref, kLimit);
    ASSERT_EQ(r0.code, 0) << r0.err;
    ASSERT_EQ(step_losses(ref).size(), size_t(kSteps));
    for (int sig : {SIGTERM, SIGINT, SIGUSR1}) {
      const std::string where = std::string(np ? "mpirun -np 2" : "alone") + ", " + name_of(sig);
      const std::string run_dir = dir + "/run" + std::to_string(np) + "_" + std::to_string(sig);
      // 10 ms a step: the signal lands mid-run however fast the machine trains.
      Proc p = spawn(moe_cmd(np, train_base(run_dir, with(with(steps, layout(np)), {"--set", "debug.step_delay_s=0.01"}))),
                     run_dir);
      ASSERT_TRUE(wait_steps(p, run_dir, 20)) << where << ": " << slurp(p.err_path);
      const auto t0 = std::chrono::steady_clock::now();
      ::kill(p.pid, sig);
      Result r = wait_for(p, kLimit);
      const double secs = seconds_since(t0);
      // mpirun answers SIGTERM and SIGINT itself and exits 1: it waits odls_base_sigkill_timeout
      // (1 s), not forwarding the ranks' output meanwhile, then sends them SIGTERM and kills them
      // 1 s later. A rank that blocks on its stdout in that time, or a stop that needs longer,
      // dies without a checkpoint: then nothing may be left half-written, and --resume auto
      // starts the run over.
      const bool mpirun_answers = np > 0 && sig != SIGUSR1;
      EXPECT_EQ(r.code, mpirun_answers ? kExitInternal : kExitStopped) << where << "\n" << r.err;
      std::smatch m;
      const std::regex stop_line("moe: stopped by (SIG[A-Z0-9]+) at step (\\d+) of " + std::to_string(kSteps) +
                                 ": checkpoint (\\S+) written");
      const bool stopped = std::regex_search(r.err, m, stop_line);
      if (mpirun_answers && !stopped) {
        EXPECT_TRUE(ckpt::list_checkpoints(run_dir + "/checkpoints").empty()) << where;
        Result again = run(moe_cmd(np, train_base(run_dir, with(with(steps, layout(np)), {"--resume", "auto"}))),
                           run_dir + "_again", kLimit);
        ASSERT_EQ(again.code, 0) << where << "\n" << again.err;
        EXPECT_TRUE(step_losses(run_dir) == step_losses(ref)) << where << ": the restarted run differs";
        std::printf("%-8s %-8s %5d %9.2f %6s %s\n", "mpirun", name_of(sig), r.code, secs, "-",
                    "killed by mpirun before the stop: no checkpoint; --resume auto restarted it, bit-exact");
        continue;
      }
      ASSERT_TRUE(stopped) << where << "\n" << r.err;
      EXPECT_EQ(m[1].str(), mpirun_answers ? "SIGTERM" : name_of(sig)) << where;
      EXPECT_EQ(count_prefixed(r.err, "moe: stopped by"), 1) << where << "\n" << r.err;
      EXPECT_EQ(count_prefixed(r.err, "moe: error"), 0) << where << "\n" << r.err;
      const int stopped_at = std::stoi(m[2].str());
      EXPECT_GE(stopped_at, 20) << where;
      EXPECT_LT(stopped_at, kSteps) << where;
      EXPECT_EQ(ckpt::resolve_checkpoint(run_dir), m[3].str()) << where << ": `latest` names the stop's checkpoint";
      EXPECT_EQ(step_losses(run_dir).size(), size_t(stopped_at)) << where << ": every trained step is logged";

      Result again = run(moe_cmd(np, train_base(run_dir, with(with(steps, layout(np)), {"--resume", "auto"}))),
                         run_dir + "_again", kLimit);
      ASSERT_EQ(again.code, 0) << where << "\n" << again.err;
      EXPECT_NE(again.out.find("resumed run "), std::string::npos) << again.out;
      const bool same_losses = step_losses(run_dir) == step_losses(ref);
      const bool same_bytes = shard_checksums(ckpt::resolve_checkpoint(run_dir)) ==
                              shard_checksums(ckpt::resolve_checkpoint(ref));
      EXPECT_TRUE(same_losses) << where << ": the losses of the resumed run differ from the uninterrupted run's";
      EXPECT_TRUE(same_bytes) << where << ": the final checkpoints differ";
      EXPECT_FALSE(shard_checksums(ckpt::resolve_checkpoint(ref)).empty());
      std::printf("%-8s %-8s %5d %9.2f %6d %s\n", np ? "mpirun" : "alone", name_of(sig), r.code, secs, stopped_at,
                  same_losses && same_bytes ? "bit-exact (losses, final shards)" : "DIFFERS");
    }
  }
  fs::remove_all(dir);
}

// A run with a checkpoint every 10 steps and 10 ms a step, signalled once 15 steps are logged,
// whose stop would take a minute (debug.stop_delay_s).
Proc slow_stop(const std::string& run_dir, const std::vector<std::string>& more) {
  Proc p = spawn(moe_cmd(0, train_base(run_dir, with({"--set", "train.steps=400", "--set", "train.log_every=1",
                                                      "--set", "checkpoint.every=10", "--set",
                                                      "debug.stop_delay_s=60", "--set", "debug.step_delay_s=0.01"},
                                                     more))),
                 run_dir);
  EXPECT_TRUE(wait_steps(p, run_dir, 15)) << slurp(p.err_path);
  return p;
}

// `latest` is a periodic checkpoint (a multiple of 10), complete, and the run resumes from it.
void expect_latest_intact(const std::string& run_dir, const std::string& where) {
  const std::string latest = ckpt::resolve_checkpoint(run_dir);
  const int64_t step = ckpt::list_checkpoints(run_dir + "/checkpoints").back().step;
  EXPECT_EQ(step % 10, 0) << where << ": " << latest;
  EXPECT_EQ(fs::path(latest).filename().string(), ckpt::step_dir_name(step)) << where;
  Result again = run(moe_cmd(0, train_base(run_dir, {"--set", "train.steps=400", "--resume", "auto"})),
                     run_dir + "_again", kLimit);
  EXPECT_EQ(again.code, 0) << where << "\n" << again.err;
  EXPECT_EQ(step_losses(run_dir).size(), 400u) << where;
}

TEST(StopSignal, ASecondSignalExitsAtOnceAndLeavesLatest) {
  const std::string dir = scratch_dir("second_signal"), run_dir = dir + "/run";
  Proc p = slow_stop(run_dir, {});
  ::kill(p.pid, SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(p.pid, SIGTERM);
  Result r = wait_for(p, kLimit);
  EXPECT_EQ(r.code, 128 + SIGTERM) << r.err;
  EXPECT_LT(seconds_since(t0), 5.0) << "a second signal exits at once";
  EXPECT_EQ(count_prefixed(r.err, "moe: [rank 0] a second stop signal, SIGTERM: exiting at once (exit 143)"), 1) << r.err;
  expect_latest_intact(run_dir, "after a second signal");
  fs::remove_all(dir);
}

TEST(StopSignal, AStopLongerThanItsBoundExitsAtOnce) {
  const std::string dir = scratch_dir("stop_bound"), run_dir = dir + "/run";
  Proc p = slow_stop(run_dir, {"--set", "run.stop_timeout_s=2"});
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(p.pid, SIGUSR1);
  Result r = wait_for(p, kLimit);
  EXPECT_EQ(r.code, 128 + SIGUSR1) << r.err;
  EXPECT_GE(seconds_since(t0), 2.0);
  EXPECT_LT(seconds_since(t0), 10.0) << "the bound is 2 s, the save would take 60";
  EXPECT_EQ(count_prefixed(r.err, "moe: [rank 0] the stop did not finish within run.stop_timeout_s after SIGUSR1: exiting "
                                  "at once (exit 138)"),
            1)
      << r.err;
  expect_latest_intact(run_dir, "after the stop's bound");
  fs::remove_all(dir);
}

TEST(StopSignal, SignalsOutsideTheSetKeepTheirDefaultAction) {
  const std::string dir = scratch_dir("stop_set");
  for (const std::string set : {"[\"SIGUSR1\"]", "[]"}) {
    const std::string run_dir = dir + "/run" + std::to_string(set.size());
    Proc p = spawn(moe_cmd(0, train_base(run_dir, {"--set", "train.steps=100000", "--set", "train.log_every=1",
                                                   "--set", "run.stop_signals=" + set})),
                   run_dir);
    ASSERT_TRUE(wait_steps(p, run_dir, 10)) << slurp(p.err_path);
    ::kill(p.pid, SIGTERM);
    Result r = wait_for(p, kLimit);
    EXPECT_EQ(r.code, 128 + SIGTERM) << "run.stop_signals = " << set << "\n" << r.err;
    EXPECT_EQ(r.err.find("moe: stopped by"), std::string::npos) << r.err;
    EXPECT_TRUE(ckpt::list_checkpoints(run_dir + "/checkpoints").empty());
  }
  Result bad = run(moe_cmd(0, train_base(dir + "/bad", {"--set", "run.stop_signals=[\"SIGKILL\"]"})), dir + "/bad",
                   kLimit);
  EXPECT_EQ(bad.code, kExitBadInput);
  EXPECT_EQ(count_prefixed(bad.err, "moe: error: --set run.stop_signals=[\"SIGKILL\"]: run.stop_signals[0]: "
                                    "\"SIGKILL\" is not one of"),
            1)
      << bad.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
