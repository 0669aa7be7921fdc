// The rules of a run's segments without running one (src/run/): which config changes a resume
// may make, identity.toml, the plan for each state of a run directory, metrics.jsonl cut at a
// step with segment events in it, and the names of the stop signals.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"
#include "src/run/config_changes.h"
#include "src/run/identity.h"
#include "src/run/start.h"
#include "src/run/stop_signals.h"

namespace moe::run {
namespace {

namespace fs = std::filesystem;

config::Config parse(const std::vector<std::string>& sets = {}) {
  return config::parse_config("[run]\ndir = \"x\"\n[parameterization]\npreset = \"sp\"\n", "test", sets, 0);
}

std::string fresh_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "moe_run_start_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(ConfigChanges, OnlyLayoutLoggingCadenceAndStopKeysAreSafe) {
  for (const char* k : {"parallel.ep", "parallel.backend", "parallel.zero1", "parallel.device", "checkpoint.every",
                        "checkpoint.keep", "train.micro_batch", "train.log_every", "train.eval_every", "run.dir",
                        "run.stop_signals", "run.stop_timeout_s", "debug.step_delay_s", "train.nonfinite"})
    EXPECT_TRUE(safe_to_change(k)) << k;
  for (const char* k : {"run.seed", "train.steps", "train.batch", "train.dtype", "train.eval_batches", "optim.lr",
                        "optim.schedule", "optim.warmup", "optim.grad_clip", "data.path", "data.kind",
                        "data.val_fraction", "data.val_path", "parameterization.preset", "moe.aux_loss"})
    EXPECT_FALSE(safe_to_change(k)) << k;
  EXPECT_TRUE(fixed_by_checkpoint("model.width"));
  EXPECT_TRUE(fixed_by_checkpoint("moe.experts"));
  EXPECT_FALSE(fixed_by_checkpoint("moe.aux_loss")) << "a loss weight may change when allowed";
}

TEST(ConfigChanges, DiffNamesEveryChangedKeyAndDefaultsFillOlderConfigs) {
  const config::Config now = parse({"optim.lr=0.001", "train.steps=900", "parallel.ep=1"});
  // A saved config that predates run.stop_signals: the default fills it in, no change.
  std::string saved = config::to_toml(parse());
  const auto at = saved.find("stop_signals");
  ASSERT_NE(at, std::string::npos);
  saved.erase(at, saved.find('\n', at) - at);
  const ConfigDiff d = diff_configs(saved, "ckpt", now);
  std::map<std::string, std::pair<std::string, std::string>> got;
  for (const ConfigChange& c : d.changes) got[c.key] = {c.before, c.after};
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(got["optim.lr"], std::make_pair(std::string("0.003"), std::string("0.001")));
  EXPECT_EQ(got["train.steps"], std::make_pair(std::string("400"), std::string("900")));
  EXPECT_TRUE(d.keys.count("run.stop_signals"));
}

TEST(ConfigChanges, UnsafeChangesAreRefusedUnlessAllowed) {
  const config::Config old = parse(), now = parse({"train.steps=800", "train.log_every=5"});
  const ConfigDiff d = diff_configs(config::to_toml(old), "ckpt", now);
  try {
    check_changes(d, {}, "runs/x/checkpoints/step_00000200", now, 200);
    FAIL() << "train.steps changed without being allowed";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.steps = 400 when runs/x/checkpoints/step_00000200 was saved, 800 now"), std::string::npos) << m;
    EXPECT_NE(m.find("its end moves from step 400 to 800"), std::string::npos) << m;
    EXPECT_NE(m.find("set optim.decay_steps = 400)"), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-change train.steps"), std::string::npos) << m;
  }
  const auto changes = check_changes(d, {"train.steps"}, "ckpt", now, 200);
  EXPECT_EQ(changes.size(), 2u) << "the safe change is logged too";
  EXPECT_THROW(check_changes(d, {"train.stepz"}, "ckpt", now, 200), InputError) << "a typo allows nothing";
}

TEST(ConfigChanges, MoreStepsAreFreeWhenTheScheduleDoesNotDependOnThem) {
  // optim.decay_steps fixes where the decay ends: every learning rate stays what it was.
  for (const std::vector<std::string>& schedule :
       {std::vector<std::string>{"optim.decay_steps=400"}, std::vector<std::string>{"optim.schedule=constant"}}) {
    const config::Config old = parse(schedule);
    std::vector<std::string> longer = schedule;
    longer.push_back("train.steps=800");
    const config::Config now = parse(longer);
    const ConfigDiff d = diff_configs(config::to_toml(old), "ckpt", now);
    ASSERT_EQ(d.changes.size(), 1u);
    EXPECT_EQ(check_changes(d, {}, "ckpt", now, 200).size(), 1u) << schedule[0];
  }
  // Moving the end of the decay moves the learning rate: refused, with the numbers. Cosine with
  // W = 20, at step 201 (t = 200): p = 180/380 before, 180/780 after, factor
  // 0.1 + 0.9 * (1 + cos(pi p)) / 2 = 0.5872 and 0.8868.
  const config::Config old = parse({"optim.decay_steps=400"}), now = parse({"optim.decay_steps=800"});
  const ConfigDiff d = diff_configs(config::to_toml(old), "ckpt", now);
  try {
    check_changes(d, {}, "ckpt", now, 200);
    FAIL() << "optim.decay_steps changed without being allowed";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("optim.decay_steps = 400 when ckpt was saved, 800 now"), std::string::npos) << m;
    EXPECT_NE(m.find("becomes 0.8868 x optim.lr instead of 0.5872 x"), std::string::npos) << m;
  }
  // ... and so does a new train.steps when the decay follows it as well.
  const config::Config both = parse({"optim.decay_steps=800", "train.steps=800"});
  const ConfigDiff d2 = diff_configs(config::to_toml(old), "ckpt", both);
  EXPECT_THROW(check_changes(d2, {"optim.decay_steps"}, "ckpt", both, 200), InputError)
      << "train.steps is free only while the decay's end stays where it was";
  EXPECT_EQ(check_changes(d2, {"optim.decay_steps", "train.steps"}, "ckpt", both, 200).size(), 2u);
  // A run that did not set it is extended by setting it where its decay ended: nothing moves.
  const config::Config planned = parse(), extended = parse({"optim.decay_steps=400", "train.steps=800"});
  const ConfigDiff d3 = diff_configs(config::to_toml(planned), "ckpt", extended);
  EXPECT_EQ(check_changes(d3, {}, "ckpt", extended, 200).size(), 2u);
}

TEST(Identity, RoundTripsAndACorruptFileIsNamed) {
  const std::string d = fresh_dir("identity");
  EXPECT_FALSE(read_identity(d).has_value());
  RunIdentity id = new_identity();
  EXPECT_EQ(id.id.size(), 32u);
  EXPECT_NE(new_identity().id, id.id);
  id.forked = true;
  id.parent_id = std::string(32, 'a');
  id.parent_checkpoint = "/runs/a/checkpoints/step_00000003";
  id.parent_step = 3;
  write_identity(d, id);
  const auto back = read_identity(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, id.id);
  EXPECT_TRUE(back->forked);
  EXPECT_EQ(back->parent_id, id.parent_id);
  EXPECT_EQ(back->parent_checkpoint, id.parent_checkpoint);
  EXPECT_EQ(back->parent_step, 3);
  std::ofstream(identity_file(d)) << "id = 'nothex'\n";
  try {
    read_identity(d);
    FAIL() << "a corrupt identity.toml is read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(identity_file(d) + ": id is not 32 hex digits"), std::string::npos) << e.what();
  }
}

TEST(StartPlan, EmptyDirectoriesStartAndOccupiedOnesNeedAResumeOrOverwrite) {
  const std::string d = fresh_dir("plan");
  const config::Config cfg = parse({"run.dir=" + d});
  EXPECT_EQ(plan_start(d, cfg, {}).kind, StartKind::Fresh);
  EXPECT_EQ(plan_start(d, cfg, {"auto", false, {}}).kind, StartKind::Fresh);
  std::ofstream(d + "/metrics.jsonl") << "{\"step\":1,\"loss\":2}\n";
  EXPECT_THROW(plan_start(d, cfg, {}), InputError);
  const StartPlan over = plan_start(d, cfg, {"", true, {}});
  EXPECT_TRUE(over.wipe);
  const StartPlan again = plan_start(d, cfg, {"auto", false, {}});
  EXPECT_EQ(again.kind, StartKind::Fresh) << "no checkpoint: auto starts the run over";
  EXPECT_TRUE(again.wipe);
  EXPECT_EQ(plan_from_text(plan_to_text(again)).identity.id, again.identity.id);
}

TEST(StartPlan, MetricsAreCutAfterTheStepWithTheirSegmentEvents) {
  const std::string d = fresh_dir("truncate");
  std::ofstream(d + "/metrics.jsonl") << "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":2}\n"
                                      << "{\"event\":\"resume\",\"at_step\":2,\"segment\":2}\n"
                                      << "{\"step\":3,\"loss\":2}\n{\"event\":\"resume\",\"at_step\":3,\"segment\":3}\n"
                                      << "{\"step\":4,\"loss\":2}\n";
  truncate_metrics_after(d, 2);
  std::ifstream f(d + "/metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "{\"event\":\"resume\",\"at_step\":2,\"segment\":2}");
}

TEST(StopSignals, NamesAndNumbers) {
  EXPECT_EQ(signal_number("SIGTERM"), SIGTERM);
  EXPECT_EQ(signal_number("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(signal_number("SIGKILL"), 0);
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGKILL), "signal 9");
}

}  // namespace
}  // namespace moe::run
