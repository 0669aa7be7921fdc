// The --out files of `moe eval` and `moe export` as users hit them (the real binary): /dev/null,
// a symlink and a directory are refused with exit 2 and one line naming them, before the
// checkpoint is read, on every rank, and are left as they were; a write that fails (a full disk;
// here EFBIG under a file-size limit, which fails write(2) the same way) exits 1 with one line
// naming the file and the system's reason, and leaves the earlier file and no temporary.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <set>

#include "src/core/error.h"
#include "tests/reliability/proc_util.h"

namespace moe::test {
namespace {

constexpr double kLimit = 120;
const std::vector<std::string> kCommands = {"eval", "export"};

// `moe <cmd> --checkpoint <ckpt> --out <out>` (eval: one batch).
std::vector<std::string> out_args(const std::string& cmd, const std::string& ckpt, const std::string& out) {
  std::vector<std::string> a = {cmd, "--checkpoint", ckpt, "--out", out};
  if (cmd == "eval") a.insert(a.end(), {"--batches", "1"});
  return a;
}

// Exit `code` and nothing on stderr but one "moe: error: " line holding `expect` (and
// mpirun's own notice).
void expect_exit_and_one_line(const Result& r, int code, const std::string& expect, const std::string& where) {
  EXPECT_EQ(r.code, code) << where << "\n" << r.err;
  expect_one_error(r, expect, where);
  for (const std::string& l : split_lines(r.err))
    EXPECT_TRUE(l.rfind("moe: error: ", 0) == 0 || is_mpirun_notice(l)) << where << ": unexpected line: " << l;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

TEST(OutPath, NotARegularFileIsRefusedAndLeftAsItWas) {
  const std::string dir = scratch_dir("out_refused"), run_dir = dir + "/run", outs = dir + "/outs";
  ASSERT_EQ(run(moe_cmd(0, train_base(run_dir)), dir + "/train", kLimit).code, 0);
  fs::create_directories(outs + "/a_dir");
  std::ofstream(outs + "/target") << "keep";
  fs::create_symlink(outs + "/target", outs + "/link");
  for (const std::string& cmd : kCommands) {
    // /dev/null with a checkpoint that does not exist: the --out check comes first.
    for (int np : {0, 2}) {
      Result r = run(moe_cmd(np, out_args(cmd, dir + "/none", "/dev/null")), dir + "/log", kLimit);
      expect_exit_and_one_line(r, kExitBadInput, "/dev/null: is a character device, not a regular file",
                               cmd + " /dev/null on " + std::to_string(np));
    }
    Result link = run(moe_cmd(0, out_args(cmd, run_dir, outs + "/link")), dir + "/log", kLimit);
    expect_exit_and_one_line(link, kExitBadInput, outs + "/link: is a symbolic link", cmd + " symlink");
    Result d = run(moe_cmd(0, out_args(cmd, run_dir, outs + "/a_dir")), dir + "/log", kLimit);
    expect_exit_and_one_line(d, kExitBadInput, outs + "/a_dir: is a directory", cmd + " directory");
  }
  struct stat st {};
  ASSERT_EQ(::lstat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null is still a device";
  EXPECT_TRUE(fs::is_symlink(outs + "/link"));
  EXPECT_EQ(slurp(outs + "/target"), "keep");
  EXPECT_TRUE(fs::is_directory(outs + "/a_dir"));
  EXPECT_EQ(names_in(outs), (std::set<std::string>{"a_dir", "link", "target"})) << "no temporary left";
  fs::remove_all(dir);
}

// `moe args` as a singleton under a file-size limit of `bytes`, SIGXFSZ ignored, so that a write
// past it fails with EFBIG. The limit reaches every regular file of the process, so stderr comes
// back through a pipe (stdout goes to /dev/null), and Open MPI is kept from files it would size
// past the limit: no helper daemon, PMIx's hash store instead of its shared-memory one, the
// self transport only.
Result run_with_file_size_limit(const std::vector<std::string>& args, rlim_t bytes, const std::string& log) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  Proc p = spawn(moe_cmd(0, args), log, "", [&] {
    ::close(fds[0]);
    if (::dup2(fds[1], 2) < 0 || !std::freopen("/dev/null", "w", stdout)) _exit(127);
    ::close(fds[1]);
    ::setenv("OMPI_MCA_ess_singleton_isolated", "1", 1);
    ::setenv("PMIX_MCA_gds", "hash", 1);
    ::setenv("OMPI_MCA_btl", "self", 1);
    ::signal(SIGXFSZ, SIG_IGN);  // kept across exec
    const struct rlimit lim = {bytes, bytes};
    ::setrlimit(RLIMIT_FSIZE, &lim);
  });
  ::close(fds[1]);
  Result r = wait_for(p, kLimit);
  // Non-blocking: a helper process of the singleton may still hold the pipe's other end.
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) r.err.append(buf, size_t(n));
  ::close(fds[0]);
  return r;
}

TEST(OutPath, AFullDiskExitsOneAndKeepsTheEarlierFile) {
  const std::string dir = scratch_dir("out_full"), run_dir = dir + "/run", outs = dir + "/outs";
  ASSERT_EQ(run(moe_cmd(0, train_base(run_dir)), dir + "/train", kLimit).code, 0);
  fs::create_directories(outs);
  for (const std::string& cmd : kCommands) {
    const std::string out = outs + "/" + cmd + ".out";
    std::ofstream(out) << "earlier";
    // eval's JSON is ~400 bytes, the export ~100 KB.
    Result full = run_with_file_size_limit(out_args(cmd, run_dir, out), cmd == "eval" ? 64 : 16384, dir + "/full");
    expect_exit_and_one_line(full, kExitInternal, "cannot write " + out + ": File too large", cmd + " on a full disk");
    EXPECT_EQ(slurp(out), "earlier") << cmd;
    EXPECT_EQ(names_in(outs).count(cmd + ".out"), 1u);
    // Without the limit the same path is replaced.
    Result ok = run(moe_cmd(0, out_args(cmd, run_dir, out)), dir + "/ok", kLimit);
    EXPECT_EQ(ok.code, 0) << ok.err;
    EXPECT_NE(slurp(out), "earlier") << cmd;
  }
  EXPECT_EQ(names_in(outs), (std::set<std::string>{"eval.out", "export.out"})) << "no temporary left";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moe::test
