// Helpers for the checkpoint tests: a small config, a scratch directory shared by all ranks,
// fingerprints of a directory's files (to prove a failed load changed nothing), and the
// expert biases and dense optimizer state of a trainer in global form.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "src/ckpt/checksum.h"
#include "tests/mpi/mpi_util.h"

namespace moe::test {

// The invariance test's model (small_moe_config: the paper's MSSP, regime III, with per-group
// eps and decay in the optimizer state), plus the expert bias so that its state is saved too,
// with a batch that every world size 1..4 divides.
inline config::Config ckpt_config(const std::string& run_dir) {
  config::Config c = small_moe_config();
  c.run.dir = run_dir;
  c.moe.expert_bias = true;
  c.moe.bias_update_rate = 1e-2;  // visible biases after a few steps
  c.train.batch = 12;
  return c;
}

// A fresh directory under the test temp dir, the same path on every rank of `c` (collective).
inline std::string shared_dir(comm::Communicator& c, const std::string& name) {
  int64_t id = 0;
  if (c.rank() == 0) id = int64_t(::getpid());
  c.broadcast(&id, 1, DType::I64, 0);
  std::string dir = ::testing::TempDir() + "moe_ckpt_" + std::to_string(id) + "_" + name;
  if (c.rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  c.barrier();
  return dir;
}

// Removes a shared_dir once every rank of `c` is done with it, unless the test failed (then it
// stays for a look). Collective over c.
inline void remove_shared(comm::Communicator& c, const std::string& dir) {
  c.barrier();
  if (c.rank() == 0 && !::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

// path relative to root -> "size:xxh64" of every file under root (symlinks by their target).
inline std::map<std::string, std::string> fingerprint(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    if (e.is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(e.path()).string();
    } else if (e.is_regular_file()) {
      std::ifstream f(e.path(), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      out[rel] =
          std::to_string(bytes.size()) + ":" + ckpt::hex64(ckpt::xxh64(bytes.data(), bytes.size()));
    } else {
      out[rel] = "dir";
    }
  }
  return out;
}

// Expert biases of every MoE layer (the same on every rank).
inline std::vector<std::vector<float>> biases(train::Trainer& t) {
  std::vector<std::vector<float>> out;
  for (models::MoeLayer* m : t.model().moe_layers()) {
    Tensor b = m->bias().to(Device::CPU);
    out.emplace_back(b.data<float>(), b.data<float>() + b.numel());
  }
  return out;
}

// The whole dense Adam first moment (length C) assembled from every rank's range; collective.
inline std::vector<double> dense_adam_m(train::Trainer& t, comm::ParallelContext& ctx) {
  optim::Optimizer& o = t.optimizer();
  const int64_t C = t.model().params().count(false);
  std::vector<double> full(C, 0.0);
  if (o.zero1() || ctx.world->rank() == 0) {
    Tensor m = o.state(false).m.to(Device::CPU);
    for (int64_t i = o.shard_begin(); i < o.shard_end(); ++i)
      full[i] = m.data<float>()[i - o.shard_begin()];
  }
  ctx.world->all_reduce(full.data(), C, DType::F64, comm::ReduceOp::Sum);
  return full;
}

// True when the dense Adam first moment of this rank's range equals `full` there, bit for bit.
inline bool dense_adam_m_matches(train::Trainer& t, const std::vector<double>& full) {
  optim::Optimizer& o = t.optimizer();
  Tensor m = o.state(false).m.to(Device::CPU);
  for (int64_t i = o.shard_begin(); i < o.shard_end(); ++i)
    if (double(m.data<float>()[i - o.shard_begin()]) != full[i]) return false;
  return true;
}

}  // namespace moe::test
