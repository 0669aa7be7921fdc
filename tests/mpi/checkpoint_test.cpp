// Checkpoint resume: (a) bit-for-bit on the same layout (1 rank; 4 ranks with ep=2, dp=2,
// ZeRO-1), (b) across layouts: saved at EP=4 on 4 ranks, loaded at EP=1 and EP=2, ZeRO-1 on and
// off, continuing within 1e-6; and train()'s periodic saves with `keep`. Layout tests use the
// first P ranks and skip when the world is smaller.
#include <cmath>

#include "src/ckpt/directory.h"
#include "tests/mpi/checkpoint_util.h"

namespace moe::test {
namespace {

const train::TrainerOptions kQuiet{false, false, false};

struct Trajectory {
  std::vector<double> losses;
  std::map<std::string, std::vector<double>> params;
  std::vector<std::vector<float>> biases;
};

// 20 steps straight vs 10, save, a fresh Trainer resuming from the run directory, 10 more.
void check_exact_resume(int P, int ep, bool zero1, const std::string& name) {
  auto sub = first_ranks(P);
  std::string dir = sub ? shared_dir(*sub, name) : "";
  if (!sub) return;
  config::Config c = ckpt_config(dir + "/run");
  c.parallel.ep = ep;
  c.parallel.zero1 = zero1;
  auto ctx = comm::make_parallel_context(std::move(sub), ep, &cpu());
  Trajectory straight, resumed;
  {
    train::Trainer t(c, ctx, kQuiet);
    for (int s = 0; s < 20; ++s) straight.losses.push_back(t.step().loss.total());
    straight.params = snapshot(t.model().params(), ctx, false);
    straight.biases = biases(t);
  }
  {
    train::Trainer t(c, ctx, kQuiet);
    for (int s = 0; s < 10; ++s) resumed.losses.push_back(t.step().loss.total());
    t.save_checkpoint();
  }
  train::Trainer t(c, ctx, kQuiet);
  ckpt::LoadInfo info = t.load_checkpoint(c.run.dir);  // a run directory: its latest
  EXPECT_EQ(info.step, 10);
  EXPECT_EQ(t.steps_done(), 10);
  EXPECT_EQ(t.optimizer().steps_taken(), 10);
  EXPECT_EQ(info.manifest.layout.world, P);
  EXPECT_EQ(info.manifest.layout.zero1, zero1);
  for (int s = 0; s < 10; ++s) resumed.losses.push_back(t.step().loss.total());
  resumed.params = snapshot(t.model().params(), ctx, false);
  resumed.biases = biases(t);

  ASSERT_EQ(straight.losses.size(), resumed.losses.size());
  for (size_t s = 0; s < straight.losses.size(); ++s)
    EXPECT_EQ(straight.losses[s], resumed.losses[s]) << "step " << s + 1 << " P=" << P;
  for (auto& [pname, v] : straight.params)
    EXPECT_TRUE(v == resumed.params[pname]) << pname << " P=" << P;
  EXPECT_TRUE(straight.biases == resumed.biases) << "expert biases, P=" << P;
  bool any_bias = false;
  for (auto& b : straight.biases)
    for (float x : b) any_bias |= x != 0;
  EXPECT_TRUE(any_bias) << "the test needs expert biases that moved";
  EXPECT_LT(straight.losses.back(), straight.losses.front());
  remove_shared(*ctx.world, dir);
}

TEST(Checkpoint, ExactResumeOneRank) { check_exact_resume(1, 1, false, "exact1"); }

TEST(Checkpoint, ExactResumeFourRanksEp2Dp2Zero1) {
  if (world().size() < 4) GTEST_SKIP() << "needs 4 ranks";
  check_exact_resume(4, 2, true, "exact4");
}

double rel(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(a) + std::abs(b), 1e-30);
}

TEST(Checkpoint, ReshardFromEp4) {
  if (world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  for (bool zero1_saved : {false, true}) {
    std::string dir = shared_dir(world(), std::string("reshard") + (zero1_saved ? "_z" : ""));
    config::Config c = ckpt_config(dir + "/run");
    // Reference: EP=4 on 4 ranks, 10 steps, save, 5 more.
    std::vector<double> ref;
    std::map<std::string, std::vector<double>> saved_params;
    std::vector<std::vector<float>> saved_biases;
    std::vector<double> saved_m;
    {
      c.parallel.ep = 4;
      c.parallel.zero1 = zero1_saved;
      auto ctx = comm::make_parallel_context(world().split(0, world().rank()), 4, &cpu());
      train::Trainer t(c, ctx, kQuiet);
      for (int s = 0; s < 10; ++s) t.step();
      t.save_checkpoint();
      saved_params = snapshot(t.model().params(), ctx, false);
      saved_biases = biases(t);
      saved_m = dense_adam_m(t, ctx);
      for (int s = 0; s < 5; ++s) ref.push_back(t.step().loss.total());
    }
    for (int ep : {1, 2}) {
      for (bool zero1 : {false, true}) {
        auto sub = first_ranks(ep);  // world = ep, dp = 1
        if (!sub) continue;
        c.parallel.ep = ep;
        c.parallel.zero1 = zero1;
        auto ctx = comm::make_parallel_context(std::move(sub), ep, &cpu());
        train::Trainer t(c, ctx, kQuiet);
        t.load_checkpoint(c.run.dir);
        EXPECT_EQ(t.steps_done(), 10);
        // The state itself arrives exactly, whatever the layout.
        auto params = snapshot(t.model().params(), ctx, false);
        for (auto& [name, v] : saved_params) EXPECT_TRUE(v == params[name]) << name << " ep=" << ep;
        EXPECT_TRUE(biases(t) == saved_biases) << "ep=" << ep;
        EXPECT_TRUE(dense_adam_m_matches(t, saved_m)) << "ep=" << ep << " zero1=" << zero1;
        double worst = 0;
        for (int s = 0; s < 5; ++s) worst = std::max(worst, rel(ref[s], t.step().loss.total()));
        if (ctx.world->rank() == 0)
          std::printf(
              "[reshard] saved ep=4 zero1=%d -> ep=%d zero1=%d: max rel loss diff over 5 steps "
              "%.2e\n",
              int(zero1_saved), ep, int(zero1), worst);
        EXPECT_LT(worst, 1e-6) << "saved zero1=" << zero1_saved << " -> ep=" << ep
                               << " zero1=" << zero1;
      }
    }
    remove_shared(world(), dir);
  }
}

// train(): saves every checkpoint.every steps and at the end, keeps checkpoint.keep, points
// latest at the newest, and sweeps away an interrupted save's .tmp directory.
TEST(Checkpoint, TrainSavesEveryAndKeeps) {
  const int P = world().size();
  const int ep = P == 3 ? 1 : P;
  std::string dir = shared_dir(world(), "every");
  config::Config c = ckpt_config(dir + "/run");
  c.parallel.ep = ep;
  c.parallel.zero1 = P > 1;
  c.train.steps = 7;
  c.checkpoint.every = 3;
  c.checkpoint.keep = 2;
  const std::string root = c.run.dir + "/checkpoints";
  if (world().rank() == 0) std::filesystem::create_directories(root + "/step_00000002.tmp");
  world().barrier();
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), ep, &cpu());
  train::Trainer t(c, ctx, {false, false, true});
  t.train();
  world().barrier();
  auto all = ckpt::list_checkpoints(root);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 6);
  EXPECT_EQ(all[1].step, 7);
  EXPECT_EQ(ckpt::resolve_checkpoint(c.run.dir), root + "/step_00000007");
  EXPECT_FALSE(std::filesystem::exists(root + "/step_00000002.tmp"));
  EXPECT_FALSE(std::filesystem::exists(root + "/step_00000003"));
  // A resumed run with nothing left to do saves nothing new.
  train::Trainer again(c, ctx, {false, false, true});
  again.load_checkpoint(c.run.dir);
  auto before = fingerprint(root);
  again.train();
  world().barrier();
  EXPECT_TRUE(before == fingerprint(root));
  world().barrier();  // every rank has looked before rank 0 writes again
  // Saving step 7 again replaces it (atomically swapped in): the new content, no leftovers.
  Tensor b = again.model().moe_layers()[0]->bias();
  b.data<float>()[0] = 42.0f;
  again.save_checkpoint();
  world().barrier();
  train::Trainer third(c, ctx, {false, false, true});
  EXPECT_EQ(third.load_checkpoint(c.run.dir).step, 7);
  EXPECT_EQ(third.model().moe_layers()[0]->bias().data<float>()[0], 42.0f);
  EXPECT_EQ(ckpt::list_checkpoints(root).size(), 2u);
  for (const auto& e : std::filesystem::directory_iterator(root))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  remove_shared(world(), dir);
}

}  // namespace
}  // namespace moe::test
