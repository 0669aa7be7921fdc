// Run directories that never mix or lose a result (the real binary under mpirun): one job per
// run directory (a second one exits 2 naming the holder; the lock goes with the job), no silent
// append to an earlier run, writes that fail name the file and the system's reason in one line,
// a resume that never guesses, and ranks that stop writing when mpirun dies.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kLimit = 90;

std::vector<int> logged_steps(const std::string& run_dir) {
  std::vector<int> steps;
  for (const std::string& l : split_lines(slurp(run_dir + "/metrics.jsonl"))) {
    auto at = l.find("\"step\":");
    if (at != std::string::npos) steps.push_back(std::atoi(l.c_str() + at + 7));
  }
  return steps;
}

TEST(RunDir, SecondJobIsRefusedAndTheLockGoesWithTheJob) {
  const std::string dir = scratch_dir("rundir_lock"), run_dir = dir + "/run";
  for (int np : {1, 4}) {
    fs::remove_all(run_dir);
    Proc first = spawn(moe_cmd(np, train_base(run_dir, {"--set", "train.steps=100000000", "--set", "train.log_every=1"})),
                       dir + "/first");
    ASSERT_TRUE(wait_steps(first, run_dir, 2, 60)) << slurp(first.err_path);
    Result second = run(moe_cmd(np, train_base(run_dir, {"--resume", run_dir})), dir + "/second", kLimit);
    EXPECT_EQ(second.code, kExitBadInput) << second.err;
    expect_one_error(second, "is in use by another job (host ", "second job on " + std::to_string(np) + " rank(s)");
    EXPECT_NE(second.err.find("pid "), std::string::npos) << second.err;
    // The job dies without any chance to clean up: its lock file stays, but is stale.
    ::kill(-first.pid, SIGKILL);
    wait_for(first, 30);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // ranks re-parented and gone
    ASSERT_TRUE(fs::exists(run_dir + "/moe.lock"));
    Result third = run(moe_cmd(np, train_base(run_dir, {"--overwrite"})), dir + "/third", kLimit);
    EXPECT_EQ(third.code, 0) << third.err;
    EXPECT_FALSE(fs::exists(run_dir + "/moe.lock")) << "a finished job removes its lock";
    EXPECT_EQ(logged_steps(run_dir), (std::vector<int>{1, 2, 3}));
  }
  fs::remove_all(dir);
}

TEST(RunDir, NoSilentAppendToAnEarlierRun) {
  const std::string dir = scratch_dir("rundir_append"), run_dir = dir + "/run";
  ASSERT_EQ(run(moe_cmd(1, train_base(run_dir)), dir + "/a", kLimit).code, 0);
  for (int np : {1, 4}) {
    Result again = run(moe_cmd(np, train_base(run_dir)), dir + "/b", kLimit);
    EXPECT_EQ(again.code, kExitBadInput) << again.err;
    expect_one_error(again, "already holds a run (metrics.jsonl and 1 checkpoint(s)): continue it with --resume",
                     "again on " + std::to_string(np));
  }
  EXPECT_EQ(logged_steps(run_dir), (std::vector<int>{1, 2, 3}));
  Result over = run(moe_cmd(4, train_base(run_dir, {"--overwrite"})), dir + "/c", kLimit);
  EXPECT_EQ(over.code, 0) << over.err;
  EXPECT_EQ(logged_steps(run_dir), (std::vector<int>{1, 2, 3}));
  fs::remove_all(dir);
}

TEST(RunDir, ResumeNeverGuesses) {
  const std::string dir = scratch_dir("rundir_resume"), run_dir = dir + "/run";
  ASSERT_EQ(run(moe_cmd(1, train_base(run_dir, {"--set", "train.steps=6", "--set", "checkpoint.every=2", "--set",
                                           "checkpoint.keep=3"})),
                dir + "/a", kLimit)
                .code,
            0);
  const std::string root = run_dir + "/checkpoints";
  for (int np : {1, 4}) {
    // At or below the checkpoint's step: nothing to train is an error, not a silent exit 0.
    Result low = run(moe_cmd(np, train_base(run_dir, {"--set", "train.steps=6", "--resume", run_dir})), dir + "/low", kLimit);
    EXPECT_EQ(low.code, kExitBadInput) << low.err;
    expect_one_error(low, "train.steps = 6 is at or below the step of", "steps on " + std::to_string(np));
    // A dangling latest: an error naming it, not a fall back to step 4.
    fs::remove(root + "/latest");
    fs::create_symlink("step_00000099", root + "/latest");
    Result dangling = run(moe_cmd(np, train_base(run_dir, {"--set", "train.steps=8", "--resume", run_dir})), dir + "/d", kLimit);
    EXPECT_EQ(dangling.code, kExitBadInput) << dangling.err;
    expect_one_error(dangling, root + "/latest: points at " + root + "/step_00000099", "dangling on " + std::to_string(np));
    fs::remove(root + "/latest");
    fs::create_symlink("step_00000006", root + "/latest");
  }
  // Resuming from step 4 of a run that logged 6 steps trains 5..8 once: no step logged twice.
  fs::remove(root + "/latest");
  fs::create_symlink("step_00000004", root + "/latest");
  Result resumed = run(moe_cmd(4, train_base(run_dir, {"--set", "train.steps=8", "--allow-change", "train.steps",
                                                       "--resume", run_dir})),
                       dir + "/r", kLimit);
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(logged_steps(run_dir), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  fs::remove_all(dir);
}

// The run directory's files on a full device (/dev/full: every write fails with ENOSPC).
TEST(RunDir, FailedWritesNameTheFileAndTheReason) {
  const std::string dir = scratch_dir("rundir_full");
  for (const char* file : {"metrics.jsonl", "config.toml", "param_table.txt"})
    for (int np : {1, 4}) {
      const std::string run_dir = dir + "/" + file + std::to_string(np);
      fs::create_directories(run_dir);
      fs::create_symlink("/dev/full", run_dir + "/" + file);
      Result r = run(moe_cmd(np, train_base(run_dir)), dir + "/log", kLimit);
      EXPECT_NE(r.code, 0) << file << " on " << np;
      expect_one_error(r, "cannot write " + run_dir + "/" + file + ": No space left on device",
                       std::string(file) + " on " + std::to_string(np));
    }
  fs::remove_all(dir);
}

// Checkpoints on a file system that fills up (a 64 KiB tmpfs; skipped where mount is not
// allowed): one line naming the failing rank's own shard and ENOSPC.
TEST(RunDir, CheckpointOnAFullDiskNamesTheShard) {
  const std::string dir = scratch_dir("rundir_fullckpt"), mnt = dir + "/small", run_dir = dir + "/run";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  fs::create_directories(run_dir);
  fs::create_symlink(mnt, run_dir + "/checkpoints");
  Result r = run(moe_cmd(4, train_base(run_dir, {"--set", "parallel.ep=2", "--set", "parallel.zero1=true"})), dir + "/log",
                 kLimit);
  ::umount(mnt.c_str());
  EXPECT_NE(r.code, 0);
  expect_one_error(r, ".bin: No space left on device", "shards on a full disk");
  EXPECT_NE(r.err.find("cannot write " + run_dir + "/checkpoints/step_00000003.tmp/shard_0000"), std::string::npos)
      << r.err;
  fs::remove_all(dir);
}

// mpirun SIGKILLed mid-run: the ranks stop at once and write nothing more.
TEST(RunDir, RanksStopWritingWhenTheLauncherDies) {
  const std::string dir = scratch_dir("rundir_launcher"), run_dir = dir + "/run";
  Proc p = spawn(moe_cmd(4, train_base(run_dir, {"--set", "parallel.ep=2", "--set", "train.steps=100000000", "--set",
                                            "train.log_every=1", "--set", "checkpoint.every=1", "--set",
                                            "checkpoint.keep=1000"})),
                 dir + "/log");
  ASSERT_TRUE(wait_steps(p, run_dir, 3, 60)) << slurp(p.err_path);
  auto ranks = rank_pids(p.pid);
  ASSERT_EQ(ranks.size(), 4u);
  auto checkpoints = [&] {
    size_t n = 0;
    for (auto& e : fs::directory_iterator(run_dir + "/checkpoints")) n += e.path().filename().string().rfind("step_", 0) == 0;
    return n;
  };
  ::kill(p.pid, SIGKILL);  // mpirun only, not its process group
  const auto t0 = std::chrono::steady_clock::now();
  const size_t lines_at_kill = logged_steps(run_dir).size(), saves_at_kill = checkpoints();
  wait_for(p, 10);
  bool any = true;
  while (any && seconds_since(t0) < 10) {
    any = false;
    for (auto [r, pid] : ranks) any = any || alive(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double gone = seconds_since(t0);
  for (auto [r, pid] : ranks)
    if (alive(pid)) {
      ADD_FAILURE() << "rank " << r << " still alive after mpirun died";
      ::kill(pid, SIGKILL);
    }
  const size_t lines = logged_steps(run_dir).size(), saves = checkpoints();
  std::printf("mpirun SIGKILLed: every rank gone after %.2f s; metric lines %zu -> %zu, checkpoints %zu -> %zu\n",
              gone, lines_at_kill, lines, saves_at_kill, saves);
  EXPECT_LT(gone, 2.0);
  // At most the one write already past its check when mpirun died (a step is ~10 ms here).
  EXPECT_LE(lines, lines_at_kill + 1);
  EXPECT_LE(saves, saves_at_kill + 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
