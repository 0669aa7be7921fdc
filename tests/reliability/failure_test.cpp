// Failure stops everyone: a 4-rank `moe train` under mpirun in which one rank is SIGKILLed at a
// random moment, throws, exits, or hangs (debug.fault_*). Every process must be gone within 60 s
// with a non-zero mpirun exit and a message naming the failed rank; the measured times are
// printed. MOE_TEST_SEED=<n> replays the random kill points.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kStopLimit = 60;  // seconds from the failure until every process is gone

std::string temp_dir(const std::string& name) { return scratch_dir("rel_" + name); }

// A tiny model training "forever" on 4 ranks with EP = 2 (so tokens cross ranks), saving often.
std::vector<std::string> long_run(const std::string& run_dir, std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"train",
                                "--config",
                                kInputs + "/base.toml",
                                "--set",
                                "run.dir=" + run_dir,
                                "--set",
                                "parallel.ep=2",
                                "--set",
                                "train.steps=100000000",
                                "--set",
                                "train.log_every=10",
                                "--set",
                                "checkpoint.every=7"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

int steps_logged(const std::string& run_dir) {
  return int(split_lines(slurp(run_dir + "/metrics.jsonl")).size());
}

// Waits until mpirun has started all 4 ranks; returns them (empty on timeout).
std::map<int, pid_t> wait_ranks(const Proc& p, double limit_s) {
  auto t0 = std::chrono::steady_clock::now();
  while (seconds_since(t0) < limit_s) {
    auto r = rank_pids(p.pid);
    if (r.size() == 4) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

// Seconds from t0 until mpirun has exited and none of the ranks is alive (limit: 2 x kStopLimit).
struct Stop {
  double seconds = 0;
  Result result;
};
Stop wait_all_gone(const Proc& p, const std::map<int, pid_t>& ranks,
                   std::chrono::steady_clock::time_point t0) {
  Stop s;
  s.result = wait_for(p, seconds_since(p.started) + 2 * kStopLimit);
  for (;;) {
    bool any = false;
    for (auto [r, pid] : ranks) any = any || alive(pid);
    if (!any || seconds_since(t0) > 2 * kStopLimit) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.seconds = seconds_since(t0);
  for (auto [r, pid] : ranks)
    if (alive(pid)) {
      ADD_FAILURE() << "rank " << r << " (pid " << pid << ") still alive; killing it";
      ::kill(pid, SIGKILL);
    }
  return s;
}

TEST(FailureStopsEveryone, SigkillAtRandomPoints) {
  const char* env_seed = std::getenv("MOE_TEST_SEED");
  const unsigned seed = env_seed ? unsigned(std::atoi(env_seed)) : std::random_device{}();
  std::mt19937 rng(seed);
  std::printf("SIGKILL test: seed %u (MOE_TEST_SEED=%u replays it)\n", seed, seed);
  const std::string dir = temp_dir("kill");
  constexpr int kRounds = 5;
  double worst = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string run_dir = dir + "/run" + std::to_string(round);
    const int victim = std::uniform_int_distribution<int>(0, 3)(rng);
    // From right after launch (MPI_Init, config) to well into training and checkpointing.
    const double delay = std::uniform_real_distribution<double>(0.0, 4.0)(rng);
    Proc p = spawn(moe_cmd(4, long_run(run_dir)), dir + "/log" + std::to_string(round));
    auto ranks = wait_ranks(p, 60);
    ASSERT_EQ(ranks.size(), 4u) << "mpirun did not start 4 ranks: " << slurp(p.err_path);
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    const int steps = steps_logged(run_dir);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(ranks.at(victim), SIGKILL), 0);
    Stop s = wait_all_gone(p, ranks, t0);
    worst = std::max(worst, s.seconds);
    std::printf(
        "  round %d: SIGKILL rank %d %.2f s after start (%d metric lines): every process gone "
        "after %.2f s, mpirun exit %d\n",
        round, victim, delay, steps, s.seconds, s.result.code);
    EXPECT_LT(s.seconds, kStopLimit);
    EXPECT_FALSE(s.result.timed_out);
    EXPECT_NE(s.result.code, 0);
    // mpirun names the rank: "mpirun noticed that process rank 2 with PID ... exited on signal 9".
    EXPECT_NE(s.result.err.find("rank " + std::to_string(victim)), std::string::npos)
        << s.result.err;
  }
  std::printf("SIGKILL: worst time to stop %.2f s over %d rounds\n", worst, kRounds);
  fs::remove_all(dir);
}

struct FaultCase {
  std::string fault;
  int expect_code;    // mpirun's exit code
  std::string names;  // stderr must contain this (the failed rank)
  std::vector<std::string> more;
};

void run_fault(const FaultCase& c) {
  const std::string dir = temp_dir(c.fault);
  const int rank = 2, step = 5;
  std::vector<std::string> more = {"--set", "debug.fault=" + c.fault,
                                   "--set", "debug.fault_rank=" + std::to_string(rank),
                                   "--set", "debug.fault_step=" + std::to_string(step)};
  more.insert(more.end(), c.more.begin(), c.more.end());
  Proc p = spawn(moe_cmd(4, long_run(dir + "/run", more)), dir + "/log");
  auto ranks = wait_ranks(p, 60);
  ASSERT_EQ(ranks.size(), 4u) << slurp(p.err_path);
  // The clock starts when the victim's "injected" line reaches mpirun's stderr.
  auto t0 = std::chrono::steady_clock::now();
  while (seconds_since(p.started) < 120 &&
         slurp(p.err_path).find("injected") == std::string::npos && alive(p.pid))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  t0 = std::chrono::steady_clock::now();
  Stop s = wait_all_gone(p, ranks, t0);
  const double total = s.seconds;
  std::printf(
      "fault \"%s\" on rank %d at step %d: every process gone %.2f s after the fault, mpirun exit "
      "%d\n",
      c.fault.c_str(), rank, step, total, s.result.code);
  std::printf("  stderr: %s\n", s.result.err.substr(0, 600).c_str());
  EXPECT_FALSE(s.result.timed_out);
  EXPECT_LT(total, kStopLimit);
  EXPECT_EQ(s.result.code, c.expect_code) << s.result.err;
  EXPECT_NE(s.result.err.find(c.names), std::string::npos) << s.result.err;
  fs::remove_all(dir);
}

TEST(FailureStopsEveryone, RankThrows) {
  // main prints "[rank 2] ..." and calls MPI_Abort with the error's code.
  run_fault(
      {"throw", 1, "moe: error: [rank 2] injected fault (debug.fault = \"throw\") at step 5", {}});
}

TEST(FailureStopsEveryone, RankExitsWithoutFinalize) {
  // mpirun notices a rank that exits non-zero and kills the others.
  run_fault({"exit", 1, "moe: debug: injected exit at step 5 on rank 2", {}});
}

TEST(FailureStopsEveryone, HungRankCaughtByWatchdog) {
  // Rank 2 sleeps forever at step 5; the others wait in a collective until the watchdog
  // (parallel.timeout_s = 3) aborts the job with exit code 4.
  // Its own heartbeat (comm/watchdog.h) names it as the culprit.
  run_fault({"hang", 4, "rank 2 is outside any collective", {"--set", "parallel.timeout_s=3"}});
}

TEST(FailureStopsEveryone, StoppedRankIsNamedAndBlamesNoOne) {
  // SIGSTOP on rank 2 mid-run: the others' watchdogs see its heartbeat stop and name it; rank 2
  // itself (continued by mpirun's SIGCONT before its SIGTERM) never claims another rank hangs.
  const std::string dir = temp_dir("sigstop");
  Proc p = spawn(moe_cmd(4, long_run(dir + "/run", {"--set", "parallel.timeout_s=3"})), dir + "/log");
  auto ranks = wait_ranks(p, 60);
  ASSERT_EQ(ranks.size(), 4u) << slurp(p.err_path);
  while (seconds_since(p.started) < 60 && steps_logged(dir + "/run") < 2 && alive(p.pid))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(::kill(ranks.at(2), SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  Stop s = wait_all_gone(p, ranks, t0);
  std::printf("SIGSTOP rank 2: every process gone %.2f s later, mpirun exit %d\n  stderr: %s\n", s.seconds,
              s.result.code, s.result.err.substr(0, 600).c_str());
  EXPECT_EQ(s.result.code, 4) << s.result.err;
  EXPECT_NE(s.result.err.find("rank 2 has sent no heartbeat"), std::string::npos) << s.result.err;
  EXPECT_EQ(s.result.err.find("[rank 2]"), std::string::npos) << s.result.err;
  fs::remove_all(dir);
}

TEST(FailureStopsEveryone, WatchdogQuietOnAHealthyRun) {
  // A short timeout must not fire while every rank is working (4 ranks on 2 cores, checkpoints).
  const std::string dir = temp_dir("healthy");
  Result r = run(
      moe_cmd(4, {"train", "--config", kInputs + "/base.toml", "--set", "run.dir=" + dir + "/run",
                  "--set", "parallel.ep=2", "--set", "train.steps=40", "--set",
                  "checkpoint.every=5", "--set", "parallel.timeout_s=5"}),
      dir + "/log", 120);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("did not complete"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
