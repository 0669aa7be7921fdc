// Every bad input a clear error: each case of tests/inputs (broken configs and data files, one
// defect each, see tests/inputs/README.md) and each broken checkpoint made here from a real save
// goes through `moe train` (and `moe eval` for checkpoints) on 1 and on 4 ranks. Each run must
// exit with code 2 within the time limit, print exactly one stderr line starting "moe: error: "
// that names the key or file (the case's "# expect:" text), nothing on stdout, no MPI_ABORT
// banner, no signal or core dump; the only other stderr lines allowed are mpirun's own notice
// that ranks exited non-zero. The number of cases and runs is printed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kLimit = 90;  // seconds per run: a hang fails the case instead of the suite

struct Case {
  std::string name, expect;
  std::vector<std::string> args;  // after "moe"
};

// "# expect: <text>" and "# args: <words>" from the header of a case file.
Case read_case(const fs::path& file, const std::string& config_arg) {
  Case c;
  c.name = file.parent_path().filename().string() + "/" + file.filename().string();
  c.args = {"train", "--config", config_arg};
  for (const std::string& l : split_lines(slurp(file.string()))) {
    if (l.rfind("# expect: ", 0) == 0) c.expect = l.substr(10);
    if (l.rfind("# args: ", 0) == 0) {
      std::istringstream is(l.substr(8));
      for (std::string w; is >> w;) c.args.push_back(w);
    }
  }
  return c;
}

// A private copy of tests/inputs to run in (cases use paths relative to it; nothing is written
// into the source tree).
std::string work_copy(const std::string& name) {
  std::string d = ::testing::TempDir() + "moe_inputs_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::copy(kInputs, d, fs::copy_options::recursive);
  return d;
}

// Runs one case at np ranks and checks everything the header promises; returns the failures.
int check_case(const Case& c, int np, const std::string& cwd) {
  const std::string log = cwd + "/log_" + std::to_string(np);
  Result r = run(moe_cmd(np, c.args), log, kLimit, cwd);
  const int before =
      ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  const std::string where = c.name + " on " + std::to_string(np) + " rank(s)";
  EXPECT_FALSE(r.timed_out) << where << ": no exit within " << kLimit << " s";
  EXPECT_EQ(r.code, kExitBadInput) << where << "\nstderr:\n" << r.err << "stdout:\n" << r.out;
  EXPECT_FALSE(r.core_dumped) << where;
  EXPECT_EQ(count_prefixed(r.err, "moe: error: "), 1) << where << "\n" << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos)
      << where << ": the message does not name \"" << c.expect << "\":\n"
      << r.err;
  EXPECT_EQ(r.err.find("MPI_ABORT"), std::string::npos) << where << ": aborted:\n" << r.err;
  for (const char* bad : {"signal", "core dumped", "Segmentation", "terminate called"})
    EXPECT_EQ(r.err.find(bad), std::string::npos) << where << ": " << bad << "\n" << r.err;
  for (const std::string& l : split_lines(r.err))
    EXPECT_TRUE(l.rfind("moe: error: ", 0) == 0 || is_mpirun_notice(l))
        << where << ": unexpected stderr line: " << l;
  EXPECT_EQ(r.out, "") << where << ": unexpected stdout";
  return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() -
         before;
}

// Runs every case on 1 and 4 ranks; prints one line per case and the totals.
void run_cases(const std::string& kind, const std::vector<Case>& cases, const std::string& cwd) {
  ASSERT_FALSE(cases.empty());
  int failed = 0;
  for (const Case& c : cases) {
    ASSERT_FALSE(c.expect.empty()) << c.name << " has no \"# expect:\" line";
    int f = 0;
    for (int np : {1, 4}) f += check_case(c, np, cwd);
    failed += f > 0;
    std::printf("  %-45s %s\n", c.name.c_str(),
                f ? "FAILED" : "ok (exit 2, one line, 1 and 4 ranks)");
  }
  std::printf("input corpus (%s): %zu cases x 2 world sizes = %zu runs, %d failed\n", kind.c_str(),
              cases.size(), 2 * cases.size(), failed);
}

std::vector<Case> cases_in(const std::string& dir, const std::string& subdir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir + "/" + subdir))
    if (e.path().extension() == ".toml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<Case> out;
  for (const fs::path& f : files) out.push_back(read_case(f, subdir + "/" + f.filename().string()));
  return out;
}

TEST(InputCorpus, GoodBaseRuns) {
  // The cases are one defect away from this: it must train on 1 and 4 ranks.
  const std::string cwd = work_copy("good");
  for (int np : {1, 4}) {
    Result r = run(moe_cmd(np, {"train", "--config", "base.toml", "--set",
                                "run.dir=run" + std::to_string(np)}),
                   cwd + "/log", kLimit, cwd);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  Result r = run(moe_cmd(1, {"train", "--config", "base.toml", "--set", "run.dir=runllmc", "--set",
                             "data.kind=llmc", "--set", "data.path=data/good.bin"}),
                 cwd + "/log", kLimit, cwd);
  EXPECT_EQ(r.code, 0) << r.err;
  // Flat token files (the paper's train.bin / val.bin), read from data.dir.
  r = run(moe_cmd(1, {"train", "--config", "base.toml", "--set", "run.dir=runbin", "--set", "data.kind=bin", "--set",
                      "data.dir=data/flat", "--set", "data.path=train_0.u16", "--set", "data.val_path=train_1.u16"}),
          cwd + "/log", kLimit, cwd);
  EXPECT_EQ(r.code, 0) << r.err;
  fs::remove_all(cwd);
}

TEST(InputCorpus, BrokenConfigs) {
  const std::string cwd = work_copy("configs");
  std::vector<Case> cases = cases_in(cwd, "configs");
  // Two that are not a file's content: a config that does not exist, and an unknown option.
  cases.push_back({"(cli)/missing_config_file",
                   "configs/nope.toml: cannot open config file",
                   {"train", "--config", "configs/nope.toml"}});
  cases.push_back({"(cli)/unknown_option",
                   "moe: error: The following argument was not expected: --bogus",
                   {"train", "--config", "base.toml", "--bogus"}});
  // A config path that is not a regular file, or is empty, would block (a FIFO) or train with
  // every default (a directory, /dev/null, an empty file): refused at once, naming the path.
  std::ofstream(cwd + "/empty.toml").flush();
  ASSERT_EQ(::mkfifo((cwd + "/fifo.toml").c_str(), 0644), 0);
  cases.push_back({"(cli)/config_is_a_directory", "configs: config file is a directory",
                   {"train", "--config", "configs"}});
  cases.push_back({"(cli)/config_is_dev_null", "/dev/null: config file is a character device",
                   {"train", "--config", "/dev/null"}});
  cases.push_back({"(cli)/config_is_empty", "empty.toml: config file is empty",
                   {"train", "--config", "empty.toml"}});
  cases.push_back({"(cli)/config_is_a_fifo", "fifo.toml: config file is a FIFO",
                   {"train", "--config", "fifo.toml"}});
  run_cases("configs", cases, cwd);
  if (!HasFailure()) fs::remove_all(cwd);
}

TEST(InputCorpus, BrokenData) {
  const std::string cwd = work_copy("data");
  std::vector<Case> cases = cases_in(cwd, "data");
  // A FIFO as the data file must not block (it cannot live in git: made here).
  ASSERT_EQ(::mkfifo((cwd + "/data/fifo.bin").c_str(), 0644), 0);
  cases.push_back({"(cli)/data_is_a_fifo", "data/fifo.bin: is a FIFO, not a regular file",
                   {"train", "--config", "base.toml", "--set", "data.kind=llmc", "--set", "data.path=data/fifo.bin"}});
  // Held-out data that is the training file through a symbolic link.
  fs::create_symlink("good.bin", cwd + "/data/link_to_good.bin");
  cases.push_back({"(cli)/val_path_links_to_path",
                   "data.val_path = \"data/link_to_good.bin\" and data.path = \"data/good.bin\" both read "
                   "data/link_to_good.bin (as data/good.bin)",
                   {"train", "--config", "base.toml", "--set", "data.kind=llmc", "--set", "data.path=data/good.bin",
                    "--set", "data.val_path=data/link_to_good.bin"}});
  run_cases("data", cases, cwd);
  if (!HasFailure()) fs::remove_all(cwd);
}

// Damaged copies of a real checkpoint (4 ranks, EP = 2, ZeRO-1: one shard per rank), each
// loaded by `moe train --resume` (at EP = 1: resharding) and `moe eval`.
TEST(InputCorpus, BrokenCheckpoints) {
  const std::string cwd = work_copy("ckpt");
  const std::vector<std::string> shape = {"--config",      "base.toml",    "--set",
                                          "parallel.ep=2", "--set",        "parallel.zero1=true",
                                          "--set",         "train.steps=2"};
  auto train = [&](const std::string& run, std::vector<std::string> more) {
    std::vector<std::string> a = {"train"};
    a.insert(a.end(), shape.begin(), shape.end());
    a.insert(a.end(), {"--set", "run.dir=" + run});
    a.insert(a.end(), more.begin(), more.end());
    Result r = moe::test::run(moe_cmd(4, a), cwd + "/log_" + run, kLimit, cwd);
    EXPECT_EQ(r.code, 0) << r.err;
    return cwd + "/" + run + "/checkpoints/step_00000002";
  };
  const std::string good = train("good", {});
  const std::string other =
      train("other", {"--set", "model.width=64", "--set", "parameterization.base.width=64"});
  ASSERT_TRUE(fs::exists(good + "/shard_00000.bin") && fs::exists(good + "/shard_00003.bin"));

  struct Damage {
    std::string name, train_expect, eval_expect;
    std::function<void(const std::string&)> apply;
  };
  auto rewrite = [](const std::string& path, const std::function<void(std::string&)>& f) {
    std::string b = slurp(path);
    f(b);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
  };
  const std::vector<Damage> damages = {
      {"truncated_shard", "shard_00000.bin: shard is", "shard_00000.bin: shard is",
       [&](const std::string& d) {
         rewrite(d + "/shard_00000.bin", [](std::string& b) { b.resize(b.size() / 2); });
       }},
      {"flipped_byte", "shard_00000.bin: checksum mismatch", "shard_00000.bin: checksum mismatch",
       [&](const std::string& d) {
         rewrite(d + "/shard_00000.bin", [](std::string& b) { b[b.size() / 2] ^= 0x10; });
       }},
      {"missing_shard", "shard_00001.bin: shard file missing",
       "shard_00001.bin: shard file missing",
       [&](const std::string& d) { fs::remove(d + "/shard_00001.bin"); }},
      {"manifest_of_another_shape", "manifest.toml: model.width differs", "shard_00000.bin",
       [&](const std::string& d) {
         fs::copy_file(other + "/manifest.toml", d + "/manifest.toml",
                       fs::copy_options::overwrite_existing);
       }},
      {"truncated_manifest", "manifest.toml", "manifest.toml",
       [&](const std::string& d) {
         rewrite(d + "/manifest.toml", [](std::string& b) { b.resize(b.size() / 3); });
       }},
      {"garbage_manifest", "manifest.toml", "manifest.toml",
       [&](const std::string& d) {
         rewrite(d + "/manifest.toml", [](std::string& b) { b = "format = 3\n[[x]\n"; });
       }},
      {"no_manifest", "no_manifest", "no_manifest",
       [&](const std::string& d) { fs::remove(d + "/manifest.toml"); }},
  };
  std::vector<Case> cases;
  for (const Damage& dm : damages) {
    const std::string dir = cwd + "/ckpt_" + dm.name;
    fs::copy(good, dir, fs::copy_options::recursive);
    dm.apply(dir);
    cases.push_back({"checkpoints/" + dm.name + " (train --resume)",
                     dm.train_expect,
                     {"train", "--config", "base.toml", "--set", "run.dir=resumed", "--set",
                      "train.steps=4", "--allow-change", "train.steps", "--resume", dir}});
    cases.push_back({"checkpoints/" + dm.name + " (eval)",
                     dm.eval_expect,
                     {"eval", "--checkpoint", dir, "--batches", "1"}});
  }
  // The synthetic language's held-out stream never ends: --batches has a documented bound.
  cases.push_back({"checkpoints/batches_beyond_synthetic_limit (eval)",
                   "--batches = 1000000000 x train.batch = 8 held-out sequences, above the 1048576",
                   {"eval", "--checkpoint", good, "--batches", "1000000000"}});
  cases.push_back({"checkpoints/missing_path (eval)",
                   "no/such/checkpoint",
                   {"eval", "--checkpoint", "no/such/checkpoint"}});
  run_cases("checkpoints", cases, cwd);
  if (!HasFailure()) fs::remove_all(cwd);
}

}  // namespace
}  // namespace moe::test
