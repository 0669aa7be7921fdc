// A run continues only itself, and only as it was (the real binary): `--resume auto` starts,
// continues and knows when a run is complete; another run's checkpoint is refused in a directory
// that holds a run (nothing there changes) and forks into an empty one (the parent is only
// read); a resume that changes what the run computes is refused naming the key and both values,
// unless allowed, and each segment's config and changes are kept.
#include <gtest/gtest.h>

#include "src/ckpt/directory.h"
#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kLimit = 120;

std::vector<std::string> steps(int n) { return {"--set", "train.steps=" + std::to_string(n), "--set", "train.log_every=1"}; }

Result train(const std::string& run_dir, const std::vector<std::string>& more, const std::string& log) {
  return run(moe_cmd(0, train_base(run_dir, more)), log, kLimit);
}

// Every file under a directory with its bytes: equal iff nothing in it changed.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (rel.rfind("heartbeats", 0) == 0) continue;  // the watchdog's, rewritten by any job
    out[rel] = e.is_symlink() ? "-> " + fs::read_symlink(e.path()).string()
               : e.is_regular_file() ? slurp(e.path().string())
                                     : "<dir>";
  }
  return out;
}

std::string identity_id(const std::string& run_dir) {
  const std::string t = slurp(run_dir + "/identity.toml");
  const auto at = t.find("id = '");
  return at == std::string::npos ? "" : t.substr(at + 6, 32);
}

TEST(Resume, AutoStartsContinuesAndKnowsWhenTheRunIsComplete) {
  const std::string dir = scratch_dir("resume_auto"), run_dir = dir + "/run";
  Result first = train(run_dir, with(steps(6), {"--resume", "auto", "--set", "checkpoint.every=3"}), dir + "/first");
  ASSERT_EQ(first.code, 0) << "an empty run.dir starts the run\n" << first.err;
  const std::string id = identity_id(run_dir);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_NE(slurp(run_dir + "/checkpoints/step_00000006/manifest.toml").find("run_id = '" + id + "'"),
            std::string::npos);
  Result done = train(run_dir, with(steps(6), {"--resume", "auto"}), dir + "/done");
  EXPECT_EQ(done.code, 0) << done.err;
  EXPECT_NE(done.out.find("the run is complete"), std::string::npos) << done.out;
  // A run killed before its first checkpoint: auto starts it over, from an empty metrics.jsonl.
  const std::string early = dir + "/early";
  Proc p = spawn(moe_cmd(0, train_base(early, steps(100000))), early);
  while (alive(p.pid) && split_lines(slurp(early + "/metrics.jsonl")).size() < 3)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(p.pid, SIGKILL);
  wait_for(p, 30);
  ASSERT_TRUE(ckpt::list_checkpoints(early + "/checkpoints").empty());
  Result plain = train(early, steps(5), dir + "/plain");
  EXPECT_EQ(plain.code, kExitBadInput) << "a plain start never appends to an earlier run";
  Result restart = train(early, with(steps(5), {"--resume", "auto"}), dir + "/restart");
  ASSERT_EQ(restart.code, 0) << restart.err;
  EXPECT_NE(restart.out.find("holds no complete checkpoint; the run starts over"), std::string::npos) << restart.out;
  EXPECT_EQ(split_lines(slurp(early + "/metrics.jsonl")).size(), 5u);
  fs::remove_all(dir);
}

TEST(Resume, AnotherRunsCheckpointIsRefusedHereAndForksIntoAnEmptyDirectory) {
  const std::string dir = scratch_dir("resume_foreign"), a = dir + "/A", c = dir + "/C", d = dir + "/D";
  ASSERT_EQ(train(a, with(steps(6), {"--set", "checkpoint.every=3"}), dir + "/a").code, 0);
  ASSERT_EQ(train(c, steps(6), dir + "/c").code, 0);
  const auto a_before = snapshot(a), c_before = snapshot(c);
  const std::string a_id = identity_id(a), c_id = identity_id(c);
  ASSERT_NE(a_id, c_id);

  // --resume A's checkpoint with run.dir = C: one line naming both runs; neither changes.
  Result foreign = train(c, with(steps(10), {"--resume", a + "/checkpoints/step_00000003"}), dir + "/foreign");
  EXPECT_EQ(foreign.code, kExitBadInput) << foreign.err;
  EXPECT_EQ(count_prefixed(foreign.err, "moe: error: "), 1) << foreign.err;
  EXPECT_NE(foreign.err.find("belongs to run " + a_id), std::string::npos) << foreign.err;
  EXPECT_NE(foreign.err.find("holds run " + c_id), std::string::npos) << foreign.err;
  EXPECT_EQ(snapshot(c), c_before) << "a refused resume changes nothing";

  // A `latest` in C that points into A (same shape): refused the same way.
  fs::remove(c + "/checkpoints/latest");
  fs::create_symlink(fs::path("../../A/checkpoints/step_00000003"), c + "/checkpoints/latest");
  Result via_latest = train(c, with(steps(10), {"--resume", "auto"}), dir + "/via_latest");
  EXPECT_EQ(via_latest.code, kExitBadInput) << via_latest.err;
  EXPECT_NE(via_latest.err.find("belongs to run " + a_id), std::string::npos) << via_latest.err;

  // Into an empty D: a fork, with a new id and its parent recorded; A is only read.
  Result fork = train(d, with(steps(10), {"--resume", a + "/checkpoints/step_00000003", "--allow-change",
                                          "train.steps"}),
                      dir + "/fork");
  ASSERT_EQ(fork.code, 0) << fork.err;
  EXPECT_NE(fork.out.find("forked from run " + a_id), std::string::npos) << fork.out;
  const std::string ident = slurp(d + "/identity.toml");
  EXPECT_NE(ident.find("[forked_from]"), std::string::npos) << ident;
  EXPECT_NE(ident.find("run_id = '" + a_id + "'"), std::string::npos) << ident;
  EXPECT_NE(ident.find("step = 3"), std::string::npos) << ident;
  EXPECT_NE(identity_id(d), a_id);
  EXPECT_EQ(snapshot(a), a_before) << "the parent of a fork is only read";
  const auto lines = split_lines(slurp(d + "/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 8u) << "the fork's event, then steps 4..10";
  EXPECT_EQ(lines[0].rfind("{\"event\":\"fork\",\"at_step\":3,", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("{\"step\":4,", 0), 0u) << lines[1];
  fs::remove_all(dir);
}

TEST(Resume, ChangesThatAlterTheRunAreRefusedUnlessAllowed) {
  const std::string dir = scratch_dir("resume_changes"), run_dir = dir + "/run";
  ASSERT_EQ(train(run_dir, with(steps(6), {"--set", "checkpoint.every=3", "--set", "checkpoint.keep=3"}), dir + "/a")
                .code,
            0);
  const auto before = snapshot(run_dir);
  const std::string ckpt3 = run_dir + "/checkpoints/step_00000003";
  // Each of these changes what the run computes: one line naming the key, the old and new value.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"run.seed=8", "run.seed = 7 when "},
      {"train.batch=16", "train.batch = 8 when "},
      {"train.dtype=bf16", "train.dtype = 'f32' when "},
      {"optim.schedule=constant", "optim.schedule = 'cosine' when "},
      {"optim.warmup=2", "optim.warmup = 20 when "},
      {"optim.grad_clip=0.5", "optim.grad_clip = 1 when "},
      {"optim.lr=0.001", "optim.lr = 0.003 when "},
      {"data.seed=2", "data.seed = 1 when "},
      {"train.eval_batches=2", "train.eval_batches = 8 when "},
      {"train.steps=9", "train.steps = 6 when "},
  };
  for (const auto& [set, expect] : refused) {
    Result r = train(run_dir, {"--resume", ckpt3, "--set", set}, dir + "/refused");
    EXPECT_EQ(r.code, kExitBadInput) << set << "\n" << r.err;
    EXPECT_EQ(count_prefixed(r.err, "moe: error: "), 1) << set << "\n" << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << set << "\n" << r.err;
    EXPECT_NE(r.err.find("--allow-change " + set.substr(0, set.find('='))), std::string::npos) << r.err;
  }
  EXPECT_EQ(snapshot(run_dir), before) << "refused resumes change nothing";
  Result typo = train(run_dir, {"--resume", ckpt3, "--allow-change", "optim.lrr"}, dir + "/typo");
  EXPECT_EQ(typo.code, kExitBadInput);
  EXPECT_NE(typo.err.find("--allow-change optim.lrr: not a key of the config"), std::string::npos) << typo.err;

  // Layout, logging, evaluation and checkpoint cadence may change; an allowed key too.
  Result ok = train(run_dir, {"--resume", ckpt3, "--set", "train.log_every=5", "--set", "checkpoint.every=2", "--set", "checkpoint.keep=3",
                              "--set", "train.steps=9", "--allow-change", "train.steps"},
                    dir + "/ok");
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("config change since the checkpoint: train.steps = 6 -> 9"), std::string::npos) << ok.out;
  EXPECT_TRUE(fs::exists(run_dir + "/config.0.toml"));
  EXPECT_NE(slurp(run_dir + "/config.3.toml").find("steps = 9"), std::string::npos);
  EXPECT_NE(slurp(run_dir + "/config.0.toml").find("steps = 6"), std::string::npos) << "the first segment's config";
  const std::string metrics = slurp(run_dir + "/metrics.jsonl");
  EXPECT_NE(metrics.find("{\"event\":\"resume\",\"at_step\":3,\"segment\":2,"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"changes\":{\"checkpoint.every\":[\"3\",\"2\"],\"train.log_every\":[\"1\",\"5\"],"
                         "\"train.steps\":[\"6\",\"9\"]}"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("{\"step\":4,"), std::string::npos) << "log_every = 5 from step 4 on";
  EXPECT_NE(metrics.find("{\"step\":9,"), std::string::npos);
  fs::remove_all(dir);
}

// optim.decay_steps fixes where the decay ends, so a finished run extended with a larger
// train.steps needs no --allow-change and continues bit for bit as if planned that long; a run
// that did not set it gets the same by setting it on the resume.
TEST(Resume, AFixedDecayEndLetsAFinishedRunBeExtendedBitForBit) {
  const std::string dir = scratch_dir("resume_extend"), run_dir = dir + "/run", ref = dir + "/ref";
  const std::vector<std::string> schedule = {"--set", "optim.warmup=2", "--set", "optim.decay_steps=6"};
  ASSERT_EQ(train(ref, with(steps(10), schedule), dir + "/ref").code, 0);
  ASSERT_EQ(train(run_dir, with(steps(6), schedule), dir + "/six").code, 0);
  Result more = train(run_dir, with(with(steps(10), schedule), {"--resume", "auto"}), dir + "/more");
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_NE(more.out.find("config change since the checkpoint: train.steps = 6 -> 10"), std::string::npos) << more.out;
  ASSERT_EQ(step_losses(ref).size(), 10u);
  EXPECT_EQ(step_losses(run_dir), step_losses(ref));
  EXPECT_EQ(shard_checksums(ckpt::resolve_checkpoint(run_dir)), shard_checksums(ckpt::resolve_checkpoint(ref)));
  // A run that did not set it: more steps alone would stretch the decay and are refused with the
  // way out, which is to set optim.decay_steps where the decay ended; then it matches too.
  const std::string plain = dir + "/plain";
  ASSERT_EQ(train(plain, with(steps(6), {"--set", "optim.warmup=2"}), dir + "/p6").code, 0);
  Result refused = train(plain, with(steps(10), {"--set", "optim.warmup=2", "--resume", "auto"}), dir + "/p10");
  EXPECT_EQ(refused.code, kExitBadInput);
  EXPECT_NE(refused.err.find("set optim.decay_steps = 6)"), std::string::npos) << refused.err;
  Result kept = train(plain, with(steps(10), {"--set", "optim.warmup=2", "--set", "optim.decay_steps=6", "--resume",
                                              "auto"}),
                      dir + "/k10");
  ASSERT_EQ(kept.code, 0) << kept.err;
  EXPECT_EQ(step_losses(plain), step_losses(ref));
  EXPECT_EQ(shard_checksums(ckpt::resolve_checkpoint(plain)), shard_checksums(ckpt::resolve_checkpoint(ref)));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
