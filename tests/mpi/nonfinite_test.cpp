// Non-finite loss or gradient on ONE rank (debug.inject_nan_*): every rank must reach the same
// verdict at the same step. Under train.nonfinite = "skip" the step is skipped everywhere and the
// parameters stay identical across ranks (dense everywhere, experts across their copies); under
// "stop" every rank throws NonFiniteStop at that step with nothing applied. Runs at every world
// size, with EP = 2 where the world allows it.
#include <cstring>

#include "src/ckpt/checksum.h"
#include "tests/mpi/checkpoint_util.h"

namespace moe::test {
namespace {

// XXH64 of a tensor's bytes, as an int64 that reductions can compare.
int64_t hash_of(const Tensor& t) {
  Tensor h = t.to(Device::CPU);
  return int64_t(ckpt::xxh64(h.raw(), size_t(h.numel()) * dtype_size(h.dtype())) >> 1);
}

// The same value on every rank of c?
bool same_everywhere(comm::Communicator& c, int64_t v) { return c.max(v) == -c.max(-v); }

struct Fixture {
  int P = world().size();
  int ep = P % 2 == 0 ? 2 : 1;
  config::Config cfg;
  comm::ParallelContext ctx;
  explicit Fixture(const std::string& policy, const std::string& into, int64_t step) {
    cfg = ckpt_config("unused");
    cfg.parallel.ep = ep;
    cfg.train.nonfinite = policy;
    cfg.debug.inject_nan_step = step;
    cfg.debug.inject_nan_rank = P - 1;  // one rank only, never rank 0 alone
    cfg.debug.inject_nan_into = into;
    ctx = comm::make_parallel_context(world().split(0, world().rank()), ep, &cpu());
  }
};

void expect_skip_identical(const std::string& into) {
  Fixture f("skip", into, 3);
  train::Trainer t(f.cfg, f.ctx, {false, false, false});
  optim::ParamStore& ps = t.model().params();
  int64_t dense_before = 0, expert_before = 0;
  for (int s = 1; s <= 5; ++s) {
    if (s == 3) {
      dense_before = hash_of(ps.values(false));
      expert_before = hash_of(ps.values(true));
    }
    train::StepRecord r = t.step();
    EXPECT_EQ(r.skipped, s == 3) << "step " << s << " (" << into << ") on rank " << world().rank();
    EXPECT_TRUE(same_everywhere(world(), r.skipped)) << "ranks disagree on skipping step " << s;
    const int64_t dense = hash_of(ps.values(false)), expert = hash_of(ps.values(true));
    EXPECT_TRUE(same_everywhere(world(), dense)) << "dense parameters differ after step " << s;
    EXPECT_TRUE(same_everywhere(*f.ctx.dp_expert, expert))
        << "copies of the same experts differ after step " << s;
    if (s == 3) {
      EXPECT_EQ(dense, dense_before) << "a skipped step changed the dense parameters";
      EXPECT_EQ(expert, expert_before) << "a skipped step changed the experts";
    } else {
      EXPECT_TRUE(std::isfinite(r.loss.total()));
      EXPECT_TRUE(r.info.finite && r.info.loss_finite);
    }
    if (s == 4) EXPECT_NE(dense, dense_before) << "training did not continue after the skip";
  }
  EXPECT_EQ(t.steps_done(), 5);
  EXPECT_EQ(t.optimizer().steps_taken(), 5) << "the optimizer's own count (4 updates, last = 5)";
  EXPECT_TRUE(cpu().all_finite(ps.values(false)) && cpu().all_finite(ps.values(true)));
}

TEST(NonFinite, SkipNanGradientOnOneRank) { expect_skip_identical("grad"); }
TEST(NonFinite, SkipNanLossOnOneRank) { expect_skip_identical("loss"); }

TEST(NonFinite, StopOnEveryRankTogether) {
  for (const char* into : {"grad", "loss"}) {
    Fixture f("stop", into, 2);
    train::Trainer t(f.cfg, f.ctx, {false, false, false});
    t.step();
    const int64_t before = hash_of(t.model().params().values(false));
    std::string msg;
    int64_t stopped = 0;
    try {
      t.step();
    } catch (const train::NonFiniteStop& e) {
      stopped = 1;
      msg = e.what();
      EXPECT_EQ(e.exit_code(), kExitNonFinite);
    }
    EXPECT_EQ(world().sum(stopped), int64_t(world().size()))
        << "not every rank stopped (" << into << ")";
    EXPECT_TRUE(Contains(msg, std::string("non-finite ") +
                                  (std::string(into) == "grad" ? "gradient" : "loss") +
                                  (std::string(into) == "grad" ? " (global norm" : " at step 2")));
    EXPECT_TRUE(Contains(msg, "no checkpoint was saved"));
    EXPECT_EQ(hash_of(t.model().params().values(false)), before)
        << "a stopped step changed parameters";
    EXPECT_EQ(t.steps_done(), 1);
  }
}

}  // namespace
}  // namespace moe::test
