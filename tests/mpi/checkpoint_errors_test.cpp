// Bad checkpoints: a truncated shard, a flipped byte, a missing shard, a manifest from another
// model shape or parameterization, a garbage manifest. Each must raise an InputError naming the
// offending file on every rank (the same message everywhere) and leave the directory untouched.
// Runs at every world size, using all ranks (ZeRO-1 on, so every rank writes a shard).
#include <filesystem>
#include <fstream>

#include "src/ckpt/directory.h"
#include "tests/mpi/checkpoint_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

struct ErrorCase {
  std::string dir;    // the checkpoint directory to load
  std::string names;  // a part the message must contain
  std::string also;   // and another (key name), or ""
};

class CheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    P_ = world().size();
    ep_ = P_ == 3 ? 1 : P_ == 4 ? 2 : P_;
    base_ = shared_dir(world(), "errors");
    cfg_ = ckpt_config(base_ + "/good");
    cfg_.parallel.ep = ep_;
    cfg_.parallel.zero1 = P_ > 1;
    ctx_ = std::make_unique<comm::ParallelContext>(
        comm::make_parallel_context(world().split(0, world().rank()), ep_, &cpu()));
    train::Trainer t(cfg_, *ctx_, {false, false, false});
    for (int s = 0; s < 3; ++s) t.step();
    good_ = t.save_checkpoint();
  }

  // A copy of the good checkpoint that rank 0 then damages with `damage(dir)`.
  template <class F>
  std::string damaged(const std::string& name, F damage) {
    std::string dir = base_ + "/" + name;
    if (world().rank() == 0) {
      fs::copy(good_, dir, fs::copy_options::recursive);
      damage(dir);
    }
    world().barrier();
    return dir;
  }

  void expect_error(const ErrorCase& c) {
    auto before = fingerprint(c.dir);
    std::string msg;
    bool input_error = false;
    try {
      train::Trainer t(cfg_, *ctx_, {false, false, false});
      t.load_checkpoint(c.dir);
    } catch (const InputError& e) {
      input_error = true;
      msg = e.what();
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_TRUE(input_error) << "expected an InputError on rank " << world().rank()
                             << ", got: " << msg;
    EXPECT_TRUE(Contains(msg, c.names));
    if (!c.also.empty()) EXPECT_TRUE(Contains(msg, c.also));
    // The same message on every rank.
    int64_t h = int64_t(ckpt::xxh64(msg.data(), msg.size()) >> 1), lo = -h;
    EXPECT_EQ(world().max(h), -world().max(lo)) << "ranks disagree on the message: " << msg;
    EXPECT_TRUE(before == fingerprint(c.dir)) << "the failed load changed " << c.dir;
    world().barrier();
  }

  void TearDown() override { remove_shared(world(), base_); }

  std::string last_shard() const { return ckpt::shard_file_name(P_ - 1); }

  int P_ = 1, ep_ = 1;
  std::string base_, good_;
  config::Config cfg_;
  std::unique_ptr<comm::ParallelContext> ctx_;
};

TEST_F(CheckpointErrors, GoodCheckpointLoads) {
  train::Trainer t(cfg_, *ctx_, {false, false, false});
  EXPECT_EQ(t.load_checkpoint(good_).step, 3);
}

TEST_F(CheckpointErrors, TruncatedShard) {
  std::string shard = last_shard();
  std::string dir = damaged("truncated", [&](const std::string& d) {
    fs::resize_file(d + "/" + shard, fs::file_size(d + "/" + shard) - 100);
  });
  expect_error({dir, dir + "/" + shard, "bytes"});
}

TEST_F(CheckpointErrors, FlippedByte) {
  std::string shard = last_shard();
  std::string dir = damaged("flipped", [&](const std::string& d) {
    std::fstream f(d + "/" + shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(std::streamoff(fs::file_size(d + "/" + shard) / 2));
    char b = 0;
    f.read(&b, 1);
    b ^= 0x10;
    f.seekp(std::streamoff(fs::file_size(d + "/" + shard) / 2));
    f.write(&b, 1);
  });
  expect_error({dir, dir + "/" + shard, "checksum"});
}

TEST_F(CheckpointErrors, MissingShard) {
  std::string shard = last_shard();
  std::string dir = damaged("missing", [&](const std::string& d) { fs::remove(d + "/" + shard); });
  expect_error({dir, dir + "/" + shard, "missing"});
}

TEST_F(CheckpointErrors, GarbageManifest) {
  std::string dir = damaged("garbage", [&](const std::string& d) {
    std::ofstream(d + "/manifest.toml") << "step = [[[ this is not toml\n\x01\x02";
  });
  expect_error({dir, dir + "/manifest.toml", ""});
}

TEST_F(CheckpointErrors, OtherModelShape) {
  // A checkpoint of the same layout but a wider model.
  config::Config wide = cfg_;
  wide.model.width = 64;
  wide.run.dir = base_ + "/wide";
  {
    train::Trainer t(wide, *ctx_, {false, false, false});
    t.save_checkpoint();
  }
  std::string dir = base_ + "/wide/checkpoints/step_00000000";
  expect_error({dir, dir + "/manifest.toml", "model.width"});
}

TEST_F(CheckpointErrors, OtherParameterization) {
  // Same shapes, another forward multiplier of the output layer (m_N^-1 at twice the base
  // width): the weights belong to the old one. (A learning rate may differ: whether a resume may
  // change it is the run's rule, src/run/config_changes.h.)
  std::string dir = damaged("param", [](const std::string&) {});
  config::Exponents e;
  e.N = -1.0;
  cfg_.parameterization.overrides["unembed"].multiplier = e;
  cfg_.parameterization.base.width = cfg_.model.width / 2;
  expect_error({dir, dir + "/manifest.toml", "parameterization table unembed.multiplier"});
}

}  // namespace
}  // namespace moe::test
