// The checkpoint commands end to end, as a user runs them: `moe train` with checkpoint.every is
// killed with SIGKILL mid-run, `moe train --resume <run dir>` continues from latest, `moe eval`
// and `moe export` read the result, and a resume into another model shape fails with exit code 2
// and one line naming the manifest. Skips when build/bin/moe is not built.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "src/ckpt/directory.h"
#include "src/data/files.h"
#include "tests/child_env.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

const std::string kMoe = std::string(MOE_BINARY_DIR) + "/bin/moe";

// Starts `moe args...` with stdout and stderr into `log`; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (!f || ::dup2(::fileno(stdout), 2) < 0) _exit(127);
    drop_mpi_environment();
    std::vector<char*> argv{const_cast<char*>(kMoe.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kMoe.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// A small model writing its run directory to `run`, a checkpoint every step.
std::vector<std::string> small_model(const std::string& run) {
  return {"--set", "run.dir=" + run,
          "--set", "model.vocab=64",
          "--set", "model.seq_len=16",
          "--set", "model.width=32",
          "--set", "model.heads=2",
          "--set", "model.depth=2",
          "--set", "moe.expert_width=32",
          "--set", "parameterization.base.width=32",
          "--set", "parameterization.base.expert_width=32",
          "--set", "parameterization.base.depth=2",
          "--set", "parallel.ep=1",
          "--set", "checkpoint.every=1",
          "--set", "train.log_every=100000"};
}

TEST(CheckpointCli, KillResumeEvalExport) {
  if (!fs::exists(kMoe)) GTEST_SKIP() << kMoe << " is not built";
  const std::string dir = ::testing::TempDir() + "moe_cli_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string run = dir + "/run";
  const std::vector<std::string> model = small_model(run);

  // 1. A long run saving every step, killed once a few checkpoints exist.
  pid_t pid = spawn(with({"train", "--set", "train.steps=1000000"}, model), dir + "/train1.log");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline && seen < 5) {
    auto all = ckpt::list_checkpoints(run + "/checkpoints");
    seen = all.empty() ? 0 : all.back().step;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL) << slurp(dir + "/train1.log");
  ASSERT_GE(seen, 5) << slurp(dir + "/train1.log");
  const int64_t S = ckpt::list_checkpoints(run + "/checkpoints").back().step;
  int64_t from =
      -1;  // the step `latest` names (S, or S - 1 if the kill fell between rename and update)
  for (const auto& c : ckpt::list_checkpoints(run + "/checkpoints"))
    if (c.dir == ckpt::resolve_checkpoint(run)) from = c.step;
  EXPECT_TRUE(from == S || from == S - 1) << from << " vs " << S;

  // 2. Resume from the run directory: three more steps.
  const std::string steps = "train.steps=" + std::to_string(S + 3);
  EXPECT_EQ(wait_exit(spawn(with({"train", "--resume", run, "--set", steps, "--allow-change", "train.steps"}, model),
                            dir + "/train2.log")),
            0)
      << slurp(dir + "/train2.log");
  const std::string log2 = slurp(dir + "/train2.log");
  EXPECT_TRUE(Contains(log2, "at step " + std::to_string(from))) << "resumed from latest";
  EXPECT_EQ(ckpt::list_checkpoints(run + "/checkpoints").back().step, S + 3);

  // 3. Eval and export read the result.
  const std::string json = dir + "/eval.json";
  EXPECT_EQ(wait_exit(spawn({"eval", "--checkpoint", run, "--batches", "2", "--out", json},
                            dir + "/eval.log")),
            0)
      << slurp(dir + "/eval.log");
  const std::string result = slurp(json);
  EXPECT_TRUE(Contains(result, "\"step\":" + std::to_string(S + 3)));
  EXPECT_TRUE(Contains(result, "\"batches\":2"));
  EXPECT_TRUE(Contains(result, "\"tokens\":" + std::to_string(2 * 8 * 16)));
  EXPECT_TRUE(Contains(result, "\"loss\":"));
  const std::string st = dir + "/model.safetensors";
  EXPECT_EQ(wait_exit(spawn({"export", "--checkpoint", run, "--out", st}, dir + "/export.log")), 0)
      << slurp(dir + "/export.log");
  EXPECT_GT(fs::file_size(st), 4u * 30000);

  // 4. Another model shape: refused with exit code 2 and one line naming the manifest and key.
  EXPECT_EQ(wait_exit(spawn(with(with({"train", "--resume", run}, model),
                                 {"--set", "model.width=64", "--set", "model.heads=4"}),
                            dir + "/train3.log")),
            kExitBadInput);
  const std::string log3 = slurp(dir + "/train3.log");
  EXPECT_TRUE(Contains(log3, "moe: error: "));
  EXPECT_TRUE(Contains(log3, "manifest.toml: model.heads differs"));
  fs::remove_all(dir);
}

// `moe eval` reads its own held-out batches (--batches x train.batch sequences): the run's
// train.eval_batches plays no part, so a --set train.batch that the held-out windows hold is
// evaluated even where eval_batches such batches would not fit, and one they do not hold is
// refused with one line.
TEST(CheckpointCli, EvalReadsItsOwnHeldOutBatches) {
  if (!fs::exists(kMoe)) GTEST_SKIP() << kMoe << " is not built";
  const std::string dir = ::testing::TempDir() + "moe_cli_eval_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string run = dir + "/run", shard = dir + "/tokens.bin";
  std::vector<uint16_t> tokens(16 * 400 + 1);  // 400 windows of 16; the last 40 held out
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint16_t((i * 7) % 64);
  data::write_llmc_shard(shard, tokens);
  const std::vector<std::string> data = {
      "--set", "data.kind=llmc", "--set", "data.path=" + shard, "--set", "data.val_fraction=0.1",
      "--set", "train.batch=8", "--set", "train.steps=2", "--set", "train.eval_batches=2"};
  ASSERT_EQ(wait_exit(spawn(with(with({"train"}, small_model(run)), data), dir + "/train.log")), 0)
      << slurp(dir + "/train.log");
  const std::string json = dir + "/eval.json";
  // 32 of the 40 held-out windows; the run's eval_batches = 2 would need 64 of them.
  EXPECT_EQ(wait_exit(spawn({"eval", "--checkpoint", run, "--batches", "1", "--set",
                             "train.batch=32", "--out", json},
                            dir + "/eval.log")),
            0)
      << slurp(dir + "/eval.log");
  EXPECT_TRUE(Contains(slurp(json), "\"tokens\":" + std::to_string(32 * 16))) << slurp(json);
  EXPECT_EQ(wait_exit(spawn({"eval", "--checkpoint", run, "--batches", "2", "--set",
                             "train.batch=32"},
                            dir + "/eval2.log")),
            kExitBadInput)
      << slurp(dir + "/eval2.log");
  EXPECT_TRUE(Contains(slurp(dir + "/eval2.log"), "windows would be evaluated twice"))
      << slurp(dir + "/eval2.log");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
