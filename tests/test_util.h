// Helpers shared by the test suites: the MPI world, random tensors, finite-difference checks,
// small configs.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "comm/mpi_communicator.h"
#include "src/config/config.h"
#include "src/core/rng.h"
#include "src/core/tensor.h"
#include "src/ops/backend.h"

namespace moe::test {

// The base interface, so that the default arguments (device = CPU) apply.
inline comm::Communicator& world() {
  static comm::MpiCommunicator w(MPI_COMM_WORLD);
  return w;
}

inline ops::Backend& cpu() {
  static std::unique_ptr<ops::Backend> b = ops::make_cpu_backend();
  return *b;
}

// Deterministic N(0, scale^2) values (f32 or f64) from a name.
inline Tensor randn(const Shape& shape, DType dt, const std::string& name, double scale = 1.0) {
  Tensor t = Tensor::empty(shape, dt);
  rng::Key k = rng::make_key(7, name);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = scale * rng::normal(k, i, 0);
    if (dt == DType::F64) t.data<double>()[i] = v;
    else t.data<float>()[i] = float(v);
  }
  return t;
}

inline double get(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : t.data<float>()[i];
}
inline void set(Tensor& t, int64_t i, double v) {
  if (t.dtype() == DType::F64) t.data<double>()[i] = v;
  else t.data<float>()[i] = float(v);
}

// sum(a * b) in double.
inline double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += get(a, i) * get(b, i);
  return s;
}

// Compares analytic gradient `grad` of loss() with respect to `x` against central differences
// at up to `max_checks` evenly spread entries. Returns the worst relative error
// |num - ana| / max(|num| + |ana|, floor); the floor keeps the f64 rounding noise of the
// differences (~1e-11) from counting as error where the true gradient is 0.
inline double grad_check(const std::function<double()>& loss, Tensor& x, const Tensor& grad,
                         int max_checks = 64, double h = 1e-5, double floor = 1e-4) {
  const int64_t n = x.numel();
  const int64_t stride = std::max<int64_t>(1, n / max_checks);
  double worst = 0;
  for (int64_t i = 0; i < n; i += stride) {
    double orig = get(x, i);
    set(x, i, orig + h);
    double lp = loss();
    set(x, i, orig - h);
    double lm = loss();
    set(x, i, orig);
    double num = (lp - lm) / (2 * h), ana = get(grad, i);
    double err = std::abs(num - ana) / std::max(std::abs(num) + std::abs(ana), floor);
    worst = std::max(worst, err);
  }
  return worst;
}

// The multi-rank tests' model: V=64 T=16 N=32 H=2 L=2 M=8 K=2 Ne=32 (the paper's MSSP, regime
// III: tied experts, zero unembedding, per-group Adam eps, decay lambda / lr_scale on every
// tensor), 20 steps with 5 of warmup, on a synthetic language with short copies.
inline config::Config small_moe_config() {
  config::Config c;
  c.model.vocab = 64;
  c.model.seq_len = 16;
  c.model.width = 32;
  c.model.heads = 2;
  c.model.depth = 2;
  c.moe.experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_width = 32;
  c.parameterization.base = {32, 32, 8, 2, 2, {}};
  c.parameterization.regime = "III";
  c.train.steps = 20;
  c.optim.warmup = 5;
  c.optim.weight_decay = 0.1;
  c.data.branching = 4;
  c.data.copy_lag = 4;
  return c;
}

// The [data] of a data-source test: files of `kind` ("llmc", "bin", "text"), held out by
// val_path or val_fraction.
inline config::DataConfig file_data(const std::string& kind, const std::string& path,
                                    const std::string& val_path = "", double val_fraction = 0,
                                    int64_t seed = 1) {
  config::DataConfig d;
  d.kind = kind;
  d.path = path;
  d.val_path = val_path;
  d.val_fraction = val_fraction;
  d.seed = seed;
  return d;
}

// A tiny config for fast model tests.
inline config::Config tiny_config() {
  config::Config c;
  c.model.vocab = 23;
  c.model.seq_len = 6;
  c.model.width = 8;
  c.model.heads = 2;
  c.model.depth = 2;
  c.moe.experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_width = 6;
  c.parameterization.base = {8, 6, 4, 2, 2, {}};
  c.parameterization.regime = "III";
  c.parameterization.init_std = 0.5;
  c.train.batch = 4;
  c.data.branching = 3;
  c.data.copy_lag = 2;
  c.parallel.ep = 1;
  return c;
}

// A small MoE transformer on a synthetic language whose copies 4 tokens back take attention:
// what the training tests learn (train_test, mixed_precision_test); they set steps and batch.
inline config::Config learning_config() {
  config::Config c;
  c.model.vocab = 64;
  c.model.seq_len = 32;
  c.model.width = 64;
  c.model.heads = 2;
  c.model.depth = 2;
  c.moe.experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_width = 64;
  c.parameterization.base = {64, 64, 4, 2, 2, {}};
  c.parameterization.regime = "III";
  c.optim.lr = 1e-2;
  // Tuned at this base like the paper's *_init_mult: the preset's 1/sqrt(fan_in) stds (0.125
  // at N = 64) times 0.16, i.e. 0.02. With the untuned stds the held-out loss after 600 steps
  // was 1.90 against 1.43 (entropy 1.30; moe train, 2026-11-28).
  for (const char* g : {"attn_qkv", "attn_out", "router", "expert_up", "expert_down"})
    c.parameterization.multipliers[g].init = 0.16;
  c.data.branching = 4;
  c.data.copy_prob = 0.3;
  c.data.copy_lag = 4;
  return c;
}

// EXPECT_TRUE(Contains(msg, "model.width")): on failure prints the whole text.
inline ::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not found in: " << text;
}

}  // namespace moe::test
