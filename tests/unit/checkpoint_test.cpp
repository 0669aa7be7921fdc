// Checkpoint pieces on one process: the XXH64 checksum against reference values, the manifest
// round trip, resolving `latest`, and crash safety for real: a forked child saving checkpoints
// of a ~100 MB state in a loop is SIGKILLed in the middle of a save, and the parent then resumes
// from `latest`.
#include "src/ckpt/checkpoint.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "src/ckpt/checksum.h"
#include "src/ckpt/directory.h"
#include "src/train/trainer.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

// One process alone, without MPI: what a forked child may use (MPI must not be touched there).
class LocalCommunicator final : public comm::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "local"; }
  void all_reduce(void*, int64_t, DType, comm::ReduceOp, Device) override {}
  void all_to_all(const void* s, void* r, int64_t n, DType t, Device d) override {
    copy(s, r, n, t, d);
  }
  void all_to_all_v(const void* s, const std::vector<int64_t>& sc, const std::vector<int64_t>& sd,
                    void* r, const std::vector<int64_t>&, const std::vector<int64_t>& rd, DType t,
                    Device d) override {
    copy(static_cast<const char*>(s) + sd[0] * dtype_size(t),
         static_cast<char*>(r) + rd[0] * dtype_size(t), sc[0], t, d);
  }
  void reduce_scatter(const void* s, void* r, int64_t n, DType t, comm::ReduceOp,
                      Device d) override {
    copy(s, r, n, t, d);
  }
  void all_gather(const void* s, void* r, int64_t n, DType t, Device d) override {
    copy(s, r, n, t, d);
  }
  void broadcast(void*, int64_t, DType, int, Device) override {}
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override {
    return std::make_unique<LocalCommunicator>();
  }

 private:
  static void copy(const void* s, void* r, int64_t n, DType t, Device d) {
    if (s != r && n > 0) copy_bytes(r, d, s, d, size_t(n) * dtype_size(t));
  }
};

TEST(CheckpointChecksum, Xxh64ReferenceValues) {
  // Reference digests from the xxhash Python package (xxhash.xxh64(data, seed=0)).
  auto hex = [](const std::string& s) { return ckpt::hex64(ckpt::xxh64(s.data(), s.size())); };
  EXPECT_EQ(hex(""), "ef46db3751d8e999");
  EXPECT_EQ(hex("a"), "d24ec4f1a98c6e5b");
  EXPECT_EQ(hex("abc"), "44bc2cf5ad770999");
  EXPECT_EQ(hex(std::string(31, 'x')), "60dd0d01083b99f0");
  EXPECT_EQ(hex(std::string(32, 'y')), "64da1f1d3495ce66");
  EXPECT_EQ(hex(std::string(33, 'z')), "c5241253c64e0268");
  std::string bytes(768, 0);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i % 256);
  EXPECT_EQ(hex(bytes), "8e03c838c596036f");
  // Streaming in uneven pieces gives the one-shot digest.
  for (size_t piece : {1, 5, 31, 32, 33, 100}) {
    ckpt::Xxh64 h;
    for (size_t at = 0; at < bytes.size(); at += piece)
      h.update(bytes.data() + at, std::min(piece, bytes.size() - at));
    EXPECT_EQ(ckpt::hex64(h.digest()), "8e03c838c596036f") << "pieces of " << piece;
  }
  uint64_t v = 0;
  EXPECT_TRUE(ckpt::parse_hex64("8e03c838c596036f", v));
  EXPECT_EQ(v, 0x8e03c838c596036full);
  EXPECT_FALSE(ckpt::parse_hex64("8e03c838c596036", v));
  EXPECT_FALSE(ckpt::parse_hex64("8e03c838c596036g", v));
}

TEST(CheckpointManifest, RoundTrip) {
  ckpt::Manifest m;
  m.step = 42;
  m.optimizer_steps = 41;
  m.config = "[model]\nwidth = 8\n";
  m.param_table = "group,lr\nembed,0.003\n";
  m.layout = {4, 2, 2, true, "adamw"};
  m.experts = 4;
  m.dense_count = 30;
  m.params = {{"embed", "embed", {5, 6}, false, 0},
              {"blocks.0.moe.expert_up", "expert_up", {4, 3, 6}, true, 0}};
  m.bias_names = {"blocks.0.moe.expert_bias"};
  m.shards = {{"shard_00000.bin",
               0,
               1234,
               0xfedcba9876543210ull,
               {{"value", "embed", -1, 0, 30}, {"adam_m", "blocks.0.moe.expert_up", 3, 0, 18}}}};
  std::string path = ::testing::TempDir() + "moe_manifest_roundtrip.toml";
  std::ofstream(path) << ckpt::manifest_to_toml(m);
  ckpt::Manifest r = ckpt::read_manifest(path);
  EXPECT_EQ(r.step, 42);
  EXPECT_EQ(r.optimizer_steps, 41);
  EXPECT_EQ(r.config, m.config);
  EXPECT_EQ(r.param_table, m.param_table);
  EXPECT_EQ(r.layout.world, 4);
  EXPECT_TRUE(r.layout.zero1);
  EXPECT_EQ(r.layout.optimizer, "adamw");
  ASSERT_EQ(r.params.size(), 2u);
  EXPECT_EQ(r.params[1].shape, (Shape{4, 3, 6}));
  EXPECT_TRUE(r.params[1].expert);
  ASSERT_EQ(r.shards.size(), 1u);
  EXPECT_EQ(r.shards[0].checksum, 0xfedcba9876543210ull);
  ASSERT_EQ(r.shards[0].records.size(), 2u);
  EXPECT_EQ(r.shards[0].records[1].expert, 3);
  EXPECT_EQ(r.shards[0].records[1].end, 18);
  EXPECT_EQ(r.bias_names, m.bias_names);
  // A record that names a tensor the manifest does not have is refused, naming the file.
  m.shards[0].records[0].name = "nope";
  std::ofstream(path) << ckpt::manifest_to_toml(m);
  try {
    ckpt::read_manifest(path);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_TRUE(Contains(e.what(), path));
    EXPECT_TRUE(Contains(e.what(), "nope"));
  }
  fs::remove(path);
}

TEST(CheckpointDirectory, ResolveAndList) {
  std::string run = ::testing::TempDir() + "moe_resolve_" + std::to_string(::getpid());
  std::string root = run + "/checkpoints";
  fs::remove_all(run);
  for (const char* d : {"step_00000005", "step_00000010", "step_00000015.tmp", "step_00000003"}) {
    fs::create_directories(root + "/" + d);
    if (std::string(d) != "step_00000003") std::ofstream(root + "/" + d + "/manifest.toml") << "x";
  }
  // step_00000003 has no manifest (incomplete) and the .tmp one is an interrupted save.
  auto all = ckpt::list_checkpoints(root);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 5);
  EXPECT_EQ(all[1].step, 10);
  // Resume never guesses: no latest, or a dangling one, is an error naming it and the newest
  // complete checkpoint; a latest symlink wins over newer steps.
  auto resolve_error = [&] {
    try {
      ckpt::resolve_checkpoint(run);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_TRUE(Contains(resolve_error(), root + "/latest: missing")) << resolve_error();
  EXPECT_TRUE(Contains(resolve_error(), root + "/step_00000010")) << resolve_error();
  ckpt::replace_latest(root, "step_00000005");
  EXPECT_EQ(ckpt::resolve_checkpoint(run), root + "/step_00000005");
  EXPECT_EQ(ckpt::resolve_checkpoint(root), root + "/step_00000005");
  EXPECT_EQ(ckpt::resolve_checkpoint(root + "/step_00000010"), root + "/step_00000010");
  ckpt::replace_latest(root, "step_00000099");
  EXPECT_TRUE(Contains(resolve_error(), root + "/latest: points at " + root + "/step_00000099")) << resolve_error();
  EXPECT_TRUE(Contains(resolve_error(), "dangling")) << resolve_error();
  ckpt::prune_checkpoints(root, 1, "step_00000010");
  all = ckpt::list_checkpoints(root);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].step, 10);
  EXPECT_FALSE(fs::exists(root + "/step_00000015.tmp"));
  EXPECT_THROW(ckpt::resolve_checkpoint(run + "/nowhere"), InputError);
  fs::remove_all(run);
}

// ~10M parameters: with Adam's two moments a checkpoint is ~115 MB, so a save takes long enough
// to be killed in the middle of.
config::Config big_config(const std::string& run) {
  config::Config c;
  c.run.dir = run;
  c.model.vocab = 512;
  c.model.seq_len = 32;
  c.model.width = 256;
  c.model.heads = 4;
  c.model.depth = 4;
  c.moe.experts = 16;
  c.moe.expert_width = 256;
  c.parameterization.base = {256, 256, 16, 2, 4, {}};
  c.parameterization.regime = "III";
  c.train.batch = 1;
  c.parallel.ep = 1;
  return c;
}

// Marks a state with its step: every expert bias and embed[0] hold the step number.
void mark(train::Trainer& t, int64_t step) {
  t.set_steps_done(step);
  for (models::MoeLayer* m : t.model().moe_layers()) {
    Tensor b = m->bias();
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = float(step);
  }
  t.model().params().find("embed")->value.data<float>()[0] = float(step);
}

[[noreturn]] void child_saves_forever(const config::Config& c) {
  try {
    comm::ParallelContext ctx =
        comm::make_parallel_context(std::make_unique<LocalCommunicator>(), 1, &cpu());
    train::Trainer t(c, ctx, {false, false, false});
    for (int64_t s = 1; s < 100000; ++s) {
      mark(t, s);
      t.save_checkpoint();
    }
  } catch (...) {
    _exit(3);
  }
  _exit(0);
}

// The name of an interrupted (or in-progress) save's directory, or "".
std::string tmp_dir(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0)
      return n;
  }
  return "";
}
bool has_tmp_dir(const std::string& root) { return !tmp_dir(root).empty(); }
// True while a save is writing its shard: the .tmp directory holds part of shard_00000.bin.
bool shard_being_written(const std::string& root) {
  std::string t = tmp_dir(root);
  std::error_code ec;
  return !t.empty() && fs::file_size(root + "/" + t + "/shard_00000.bin", ec) > 0 && !ec;
}

TEST(CheckpointCrash, SigkillDuringSaveLeavesLatestLoadable) {
  const std::string run = ::testing::TempDir() + "moe_crash_" + std::to_string(::getpid());
  const std::string root = run + "/checkpoints";
  fs::remove_all(run);
  config::Config c = big_config(run);
  c.checkpoint.keep = 2;
  bool killed_mid_save = false;
  int attempt = 0;
  for (; attempt < 5 && !killed_mid_save; ++attempt) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) child_saves_forever(c);
    // Wait for one complete checkpoint and a later save writing its shard, then kill.
    int status = 0;
    bool exited = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline &&
           !(fs::is_symlink(root + "/latest") && shard_being_written(root))) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {  // the child died on its own
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended by itself, status " << status;
    // The interrupted save's directory is still there, with a shard and no manifest.
    killed_mid_save =
        shard_being_written(root) && !fs::exists(root + "/" + tmp_dir(root) + "/manifest.toml");
  }
  ASSERT_TRUE(killed_mid_save) << "no kill landed inside a save in 5 attempts";
  std::printf(
      "[crash] SIGKILL left %s behind with %lld bytes of its shard (attempt %d); latest -> %s\n",
      tmp_dir(root).c_str(),
      (long long)fs::file_size(root + "/" + tmp_dir(root) + "/shard_00000.bin"), attempt,
      fs::read_symlink(root + "/latest").c_str());

  // The interrupted save is not a checkpoint; latest names a complete one, and it loads.
  auto all = ckpt::list_checkpoints(root);
  ASSERT_FALSE(all.empty());
  EXPECT_LE(all.size(), 3u);
  comm::ParallelContext ctx = comm::make_parallel_context(world().split(0, 0), 1, &cpu());
  train::Trainer t(c, ctx, {false, false, false});
  ckpt::LoadInfo info = t.load_checkpoint(run);
  EXPECT_EQ(info.dir, root + "/" + fs::read_symlink(root + "/latest").string());
  EXPECT_GE(info.step, 1);
  EXPECT_EQ(t.steps_done(), info.step);
  for (models::MoeLayer* m : t.model().moe_layers()) {
    Tensor b = m->bias();
    for (int64_t i = 0; i < b.numel(); ++i) ASSERT_EQ(b.data<float>()[i], float(info.step));
  }
  // Everything else is the initial state, bit for bit.
  train::Trainer fresh(c, ctx, {false, false, false});
  mark(fresh, info.step);
  Tensor& a = t.model().params().values(false);
  Tensor& b = fresh.model().params().values(false);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
  Tensor& ea = t.model().params().values(true);
  Tensor& eb = fresh.model().params().values(true);
  EXPECT_EQ(std::memcmp(ea.raw(), eb.raw(), ea.nbytes()), 0);

  // The resumed run's next save sweeps the stale .tmp away and keeps `keep` checkpoints.
  mark(t, info.step + 1000);
  t.save_checkpoint();
  EXPECT_FALSE(has_tmp_dir(root));
  all = ckpt::list_checkpoints(root);
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(all.back().step, info.step + 1000);
  EXPECT_EQ(ckpt::resolve_checkpoint(run), all.back().dir);
  fs::remove_all(run);
}

}  // namespace
}  // namespace moe::test
