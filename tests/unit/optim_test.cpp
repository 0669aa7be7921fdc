// AdamW/SGD steps by hand, the lr schedule, and Optimizer group rates, clipping, non-finite grads.
#include <cmath>
#include <limits>

#include "comm/parallel_context.h"
#include "src/optim/optimizer.h"
#include "src/optim/schedule.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

Tensor Vec(const std::vector<double>& v, DType dt = DType::F64) {
  Tensor t = Tensor::empty({int64_t(v.size())}, dt);
  for (size_t i = 0; i < v.size(); ++i) set(t, int64_t(i), v[i]);
  return t;
}

TEST(Optim, AdamWMatchesHandComputation) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
  const std::vector<std::vector<double>> grads = {
      {0.5, -2.0, 0.0}, {0.1, -1.0, 3.0}, {-0.4, 0.2, 1.0}};
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor p = Vec({1.0, -0.5, 2.0}, dt), m = Tensor::zeros({3}, dt), v = Tensor::zeros({3}, dt);
    double ep[3] = {1.0, -0.5, 2.0}, em[3] = {0, 0, 0}, ev[3] = {0, 0, 0};
    for (int step = 1; step <= 3; ++step) {
      Tensor g = Vec(grads[step - 1], dt);
      cpu().adamw_step(p, g, m, v, lr, b1, b2, eps, wd, step);
      for (int i = 0; i < 3; ++i) {
        double gi = grads[step - 1][i];
        em[i] = b1 * em[i] + (1 - b1) * gi;
        ev[i] = b2 * ev[i] + (1 - b2) * gi * gi;
        double mh = em[i] / (1 - std::pow(b1, step)), vh = ev[i] / (1 - std::pow(b2, step));
        // Decoupled decay: wd multiplies the weight, not the gradient fed to the moments.
        ep[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * ep[i]);
        const double tol = dt == DType::F64 ? 1e-14 : 2e-6;
        EXPECT_NEAR(get(p, i), ep[i], tol) << "step " << step << " i " << i;
        EXPECT_NEAR(get(m, i), em[i], tol);
        EXPECT_NEAR(get(v, i), ev[i], tol);
      }
    }
  }
}

TEST(Optim, AdamWFirstStepMovesEachWeightByLr) {
  // With bias correction, step 1 has m_hat = g and v_hat = g^2, so every coordinate with a
  // nonzero gradient moves by lr * sign(g), whatever the gradient's scale.
  Tensor p = Vec({0.0, 0.0, 0.0}), m = Tensor::zeros({3}, DType::F64),
         v = Tensor::zeros({3}, DType::F64);
  cpu().adamw_step(p, Vec({1e-3, -50.0, 7.0}), m, v, 0.02, 0.9, 0.999, 1e-12, 0.0, 1);
  EXPECT_NEAR(get(p, 0), -0.02, 1e-9);
  EXPECT_NEAR(get(p, 1), 0.02, 1e-9);
  EXPECT_NEAR(get(p, 2), -0.02, 1e-9);
}

TEST(Optim, SgdMomentumMatchesHandComputation) {
  const double lr = 0.1, mu = 0.9, wd = 0.01;
  Tensor p = Vec({1.0, -1.0}), buf = Tensor::zeros({2}, DType::F64);
  // buf1 = g1; buf2 = mu buf1 + g2; buf3 = mu buf2 + g3; p -= lr (buf + wd p) each step.
  const double g[3][2] = {{1.0, 2.0}, {-1.0, 0.5}, {0.25, 0.0}};
  double b[2] = {0, 0}, e[2] = {1.0, -1.0};
  for (int s = 0; s < 3; ++s) {
    cpu().sgd_step(p, Vec({g[s][0], g[s][1]}), buf, lr, mu, wd);
    for (int i = 0; i < 2; ++i) {
      b[i] = mu * b[i] + g[s][i];
      e[i] -= lr * (b[i] + wd * e[i]);
      EXPECT_NEAR(get(buf, i), b[i], 1e-15);
      EXPECT_NEAR(get(p, i), e[i], 1e-15) << "step " << s + 1;
    }
  }
  // Two steps written out: buf = 1 then 0.9 + 1 = 1.9.
  Tensor q = Vec({2.0}), qb = Tensor::zeros({1}, DType::F64);
  cpu().sgd_step(q, Vec({1.0}), qb, 0.5, 0.9, 0.0);
  EXPECT_DOUBLE_EQ(get(q, 0), 1.5);
  cpu().sgd_step(q, Vec({1.0}), qb, 0.5, 0.9, 0.0);
  EXPECT_DOUBLE_EQ(get(q, 0), 1.5 - 0.5 * 1.9);
}

TEST(Optim, ScheduleIsTheOfficialGetLr) {
  using optim::lr_factor;
  // The official get_lr with warmup_steps W = 3, max_steps = 7, min_lr = 0.1 peak, at its
  // t = 0, 1, ... (our step = t + 1): warmup (t + 1) / (W + 1) = 1/4, 2/4, 3/4; then cosine with
  // p = (t - W) / (max_steps - W) = 0, 1/4, 1/2, 3/4, 1 at t = 3..7, factor
  // 0.1 + 0.9 * 0.5 * (1 + cos(pi p)) = 1, 0.1 + 0.45 (1 + sqrt(1/2)), 0.55,
  // 0.1 + 0.45 (1 - sqrt(1/2)), 0.1; and 0.1 after max_steps.
  const double h = std::sqrt(0.5);
  const double want[] = {0.25, 0.5, 0.75, 1.0, 0.1 + 0.45 * (1 + h), 0.55, 0.1 + 0.45 * (1 - h), 0.1, 0.1, 0.1};
  for (int step = 1; step <= 10; ++step)
    EXPECT_NEAR(lr_factor("cosine", step, 3, 7, 0.1), want[step - 1], 1e-15) << "step " << step;
  // Linear: the same warmup, then a straight line from 1 at t = W to min at t = max_steps
  // (t = 5 is half way: 0.2 + 0.8 / 2).
  EXPECT_DOUBLE_EQ(lr_factor("linear", 3, 3, 7, 0.2), 0.75);
  EXPECT_NEAR(lr_factor("linear", 4, 3, 7, 0.2), 1.0, 1e-15);
  EXPECT_NEAR(lr_factor("linear", 6, 3, 7, 0.2), 0.6, 1e-15);
  EXPECT_NEAR(lr_factor("linear", 8, 3, 7, 0.0), 0.0, 1e-15);
  // Constant: the same warmup, then 1.
  EXPECT_DOUBLE_EQ(lr_factor("constant", 3, 4, 100, 0.1), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(lr_factor("constant", 100, 4, 100, 0.1), 1.0);
  // No warmup: the first step (t = 0) is the peak, and decay starts after it.
  EXPECT_DOUBLE_EQ(lr_factor("cosine", 1, 0, 100, 0.1), 1.0);
  EXPECT_LT(lr_factor("cosine", 2, 0, 100, 0.1), 1.0);
  // Warmup as long as the run: min_lr after it, as the official code (it > max_steps).
  EXPECT_DOUBLE_EQ(lr_factor("cosine", 11, 10, 10, 0.1), 0.1);
  // Monotone non-increasing after warmup.
  for (const char* s : {"cosine", "linear"})
    for (int step = 11; step < 120; ++step)
      EXPECT_LE(lr_factor(s, step + 1, 10, 110, 0.1), lr_factor(s, step, 10, 110, 0.1))
          << s << step;
}

// A small model: two dense params in different groups and one expert param, on one rank.
struct Fixture {
  optim::ParamStore store;
  optim::ParamTable table;
  comm::ParallelContext ctx;
  optim::Param *a, *b, *e;
  explicit Fixture(DType dt = DType::F64)
      : ctx(comm::make_parallel_context(world().split(0, world().rank()), 1, &cpu())) {
    a = store.add("embed", optim::Group::Embed, {3});
    b = store.add("router", optim::Group::Router, {2, 1});
    e = store.add("experts.up", optim::Group::ExpertUp, {1, 2}, true, 0);
    store.allocate(dt, Device::CPU);
    for (int g = 0; g < optim::kNumGroups; ++g) {
      table.groups[g].group = static_cast<optim::Group>(g);
      table.groups[g].lr = 1e-3 * (g + 1);
      table.groups[g].eps = 1e-8;
      table.groups[g].weight_decay = 0;
    }
  }
  void set_grads(const std::vector<double>& dense, const std::vector<double>& expert) {
    for (size_t i = 0; i < dense.size(); ++i) set(store.grads(false), int64_t(i), dense[i]);
    for (size_t i = 0; i < expert.size(); ++i) set(store.grads(true), int64_t(i), expert[i]);
  }
};

config::OptimConfig Sgd() {
  config::OptimConfig c;
  c.name = "sgd";
  c.warmup = 0;
  c.schedule = "constant";
  c.grad_clip = 0;
  c.momentum = 0.9;
  return c;
}

TEST(Optim, PerGroupLearningRatesAndDecay) {
  Fixture f;
  f.table.groups[int(optim::Group::Embed)].lr = 0.1;
  f.table.groups[int(optim::Group::Router)].lr = 0.3;
  f.table.groups[int(optim::Group::ExpertUp)].lr = 0.05;
  f.table.groups[int(optim::Group::Router)].weight_decay = 0.5;
  config::OptimConfig cfg = Sgd();
  cfg.warmup = 3;  // step 1 runs at (t + 1) / (W + 1) = 1/4 of each group's rate
  optim::Optimizer opt(cfg, 100, f.table, f.store, f.ctx, false);
  for (int64_t i = 0; i < 5; ++i) set(f.store.values(false), i, 1.0);
  for (int64_t i = 0; i < 2; ++i) set(f.store.values(true), i, 1.0);
  f.set_grads({1, 1, 1, 1, 1}, {1, 1});
  optim::StepInfo info = opt.reduce_gradients();
  opt.apply(1, info);
  EXPECT_DOUBLE_EQ(info.lr[int(optim::Group::Embed)], 0.025);
  EXPECT_DOUBLE_EQ(info.lr[int(optim::Group::Router)], 0.075);
  EXPECT_DOUBLE_EQ(info.lr[int(optim::Group::ExpertUp)], 0.0125);
  // First SGD step: p -= lr * (g + wd p) with the momentum buffer starting at zero.
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(get(f.a->value, i), 1 - 0.025, 1e-15);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(get(f.b->value, i), 1 - 0.075 * (1 + 0.5), 1e-15);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(get(f.e->value, i), 1 - 0.0125, 1e-15);
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(Optim, AdamUsesEachGroupsEps) {
  // A huge eps turns Adam into (almost) SGD with rate lr / eps on that group only.
  Fixture f;
  f.table.groups[int(optim::Group::Router)].eps = 100.0;
  config::OptimConfig cfg = Sgd();
  cfg.name = "adamw";
  optim::Optimizer opt(cfg, 10, f.table, f.store, f.ctx, false);
  f.set_grads({2, 2, 2, 2, 2}, {2, 2});
  optim::StepInfo info = opt.reduce_gradients();
  opt.apply(1, info);
  const double lr_embed = f.table.groups[int(optim::Group::Embed)].lr;
  const double lr_router = f.table.groups[int(optim::Group::Router)].lr;
  EXPECT_NEAR(get(f.a->value, 0), -lr_embed, 1e-10);                   // sign step
  EXPECT_NEAR(get(f.b->value, 0), -lr_router * 2 / (2 + 100), 1e-12);  // g / (|g| + eps)
}

TEST(Optim, GradNormClipping) {
  Fixture f;
  config::OptimConfig cfg = Sgd();
  cfg.grad_clip = 1.3;
  optim::Optimizer opt(cfg, 10, f.table, f.store, f.ctx, false);
  // Dense (3, 4, 0, 0, 0) and expert (0, 12): global norm sqrt(9 + 16 + 144) = 13.
  f.set_grads({3, 4, 0, 0, 0}, {0, 12});
  optim::StepInfo info = opt.reduce_gradients();
  EXPECT_NEAR(info.grad_norm, 13.0, 1e-12);
  EXPECT_TRUE(info.finite);
  opt.apply(1, info);
  EXPECT_NEAR(info.grad_norm, 13.0, 1e-12);  // reported before clipping
  const double s = 1.3 / 13.0, lr_a = info.lr[int(optim::Group::Embed)],
               lr_e = info.lr[int(optim::Group::ExpertUp)];
  // The clipped gradient has norm grad_clip, in the same direction, dense and expert alike.
  EXPECT_NEAR(get(f.a->value, 0), -lr_a * 3 * s, 1e-9);
  EXPECT_NEAR(get(f.a->value, 1), -lr_a * 4 * s, 1e-9);
  EXPECT_NEAR(get(f.e->value, 1), -lr_e * 12 * s, 1e-9);

  // Below the threshold the gradient is used as is.
  Fixture g;
  cfg.grad_clip = 100;
  optim::Optimizer opt2(cfg, 10, g.table, g.store, g.ctx, false);
  g.set_grads({3, 4, 0, 0, 0}, {0, 12});
  optim::StepInfo info2 = opt2.reduce_gradients();
  opt2.apply(1, info2);
  EXPECT_NEAR(get(g.a->value, 1), -info2.lr[int(optim::Group::Embed)] * 4, 1e-12);
}

TEST(Optim, NonFiniteGradientIsReported) {
  for (double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    for (bool in_expert : {false, true}) {
      Fixture f(DType::F32);
      optim::Optimizer opt(Sgd(), 10, f.table, f.store, f.ctx, false);
      f.set_grads({0.1, 0.2, 0.3, 0.4, 0.5}, {0.6, 0.7});
      set(in_expert ? f.store.grads(true) : f.store.grads(false), 1, bad);
      optim::StepInfo info = opt.reduce_gradients();
      EXPECT_FALSE(info.finite) << bad << " in expert " << in_expert;
    }
  Fixture ok(DType::F32);
  optim::Optimizer opt(Sgd(), 10, ok.table, ok.store, ok.ctx, false);
  ok.set_grads({0.1, 0.2, 0.3, 0.4, 0.5}, {0.6, 0.7});
  optim::StepInfo info = opt.reduce_gradients();
  EXPECT_TRUE(info.finite);
  EXPECT_NEAR(info.grad_norm, std::sqrt(0.01 + 0.04 + 0.09 + 0.16 + 0.25 + 0.36 + 0.49), 1e-6);
}

}  // namespace
}  // namespace moe::test
