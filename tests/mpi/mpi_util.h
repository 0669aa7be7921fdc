// Helpers for multi-rank tests: sub-worlds of the first P ranks, full parameter snapshots
// gathered in global expert order, and training runs on a given layout.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "comm/parallel_context.h"
#include "src/train/trainer.h"
#include "tests/test_util.h"

namespace moe::test {

// The first P ranks of the world as a communicator (nullptr on the other ranks).
inline std::unique_ptr<comm::Communicator> first_ranks(int P) {
  auto sub = world().split(world().rank() < P ? 0 : 1, world().rank());
  if (world().rank() >= P) return nullptr;
  return sub;
}

// Every parameter as a host f64 vector in global layout (experts in global order), valid on
// rank 0 of ctx.world; collective over ctx.world.
inline std::map<std::string, std::vector<double>> snapshot(optim::ParamStore& ps,
                                                           comm::ParallelContext& ctx, bool grads) {
  std::map<std::string, std::vector<double>> out;
  for (optim::Param& p : ps.params()) {
    Tensor t = (grads ? p.grad : p.value).to(Device::CPU);
    std::vector<double> local(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) local[i] = get(t, i);
    if (!p.expert) {
      out[p.name] = local;
      continue;
    }
    std::vector<double> all(local.size() * ctx.ep_size);
    ctx.ep->all_gather(local.data(), all.data(), int64_t(local.size()), DType::F64);
    out[p.name] = all;
  }
  return out;
}

struct LayoutRun {
  std::vector<double> losses;  // per step (ce + aux + z)
  std::map<std::string, std::vector<double>> params;
};

// Trains `steps` steps of cfg on the first P ranks with the given ep and zero1; results on
// world rank 0. Other ranks return an empty result.
inline LayoutRun train_layout(config::Config cfg, int P, int ep, bool zero1, int steps) {
  LayoutRun r;
  auto sub = first_ranks(P);
  if (!sub) return r;
  cfg.parallel.ep = ep;
  cfg.parallel.zero1 = zero1;
  auto ctx = comm::make_parallel_context(std::move(sub), ep, &cpu());
  train::Trainer tr(cfg, ctx, {false, false});
  for (int s = 0; s < steps; ++s) r.losses.push_back(tr.step().loss.total());
  r.params = snapshot(tr.model().params(), ctx, false);
  auto layers = tr.model().moe_layers();  // expert biases: replicated, compared like parameters
  for (size_t l = 0; l < layers.size(); ++l) {
    Tensor b = layers[l]->bias().to(Device::CPU);
    std::vector<double>& v = r.params["expert_bias." + std::to_string(l)];
    for (int64_t i = 0; i < b.numel(); ++i) v.push_back(get(b, i));
  }
  return r;
}

}  // namespace moe::test
