// OutputFile (src/core/output_file.h): a regular file is replaced and a new name created, both
// whole; a symlink, a device, a directory or a FIFO is refused and left as it was; a write that
// fails (EFBIG under RLIMIT_FSIZE, as a full disk would give ENOSPC) or an exception leaves the
// original untouched and no temporary behind.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "src/core/error.h"
#include "src/core/output_file.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "moe_output_file_" + std::to_string(::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Writes `text` to `path` with no OutputFile, as a file already there.
  void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  std::string dir_;
};

// The message of the InputError that writing `path` throws ("" if none).
std::string refusal(const std::string& path) {
  try {
    write_output_atomically(path, "new");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST_F(OutputFileTest, ReplacesARegularFileKeepingItsPermissions) {
  const std::string out = dir_ + "/out.json";
  put(out, "old contents, longer than the new");
  ASSERT_EQ(::chmod(out.c_str(), 0600), 0);
  write_output_atomically(out, "new");
  EXPECT_EQ(slurp(out), "new");
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"out.json"});
}

TEST_F(OutputFileTest, CreatesANewNameAndCountsItsBytes) {
  const std::string out = dir_ + "/model.safetensors";
  OutputFile f(out);
  f.write("0123", 4);
  f.write(std::string("4567"));
  EXPECT_FALSE(fs::exists(out)) << "nothing under the final name before commit";
  EXPECT_EQ(f.commit(), 8);
  EXPECT_EQ(slurp(out), "01234567");
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"model.safetensors"});
}

TEST_F(OutputFileTest, RefusesASymlinkAndLeavesItAndItsTarget) {
  const std::string target = dir_ + "/target.json", link = dir_ + "/link.json";
  put(target, "keep");
  fs::create_symlink(target, link);
  EXPECT_EQ(refusal(link), link + ": is a symbolic link, not a regular file; outputs replace only regular files");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(slurp(target), "keep");
  // A dangling link too: writing through it would create a file wherever it points.
  fs::create_symlink(dir_ + "/nowhere", dir_ + "/dangling");
  EXPECT_NE(refusal(dir_ + "/dangling").find("is a symbolic link"), std::string::npos);
  EXPECT_EQ(names_in(dir_), (std::set<std::string>{"dangling", "link.json", "target.json"}));
}

TEST_F(OutputFileTest, RefusesADeviceBeforeCreatingAnything) {
  // As root, renaming over /dev/null would replace the device with a regular file.
  EXPECT_EQ(refusal("/dev/null"),
            "/dev/null: is a character device, not a regular file; outputs replace only regular files");
  EXPECT_THROW(check_output_path("/dev/full"), InputError);
  struct stat st {};
  ASSERT_EQ(::lstat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(OutputFileTest, RefusesADirectoryAndAFifo) {
  const std::string sub = dir_ + "/sub", fifo = dir_ + "/fifo";
  fs::create_directories(sub);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(refusal(sub), sub + ": is a directory; outputs replace only regular files");
  EXPECT_EQ(refusal(sub + "/"), sub + "/: names a directory (ends in /)");
  // Never opened: opening a FIFO for writing would block until a reader comes.
  EXPECT_EQ(refusal(fifo), fifo + ": is a FIFO, not a regular file; outputs replace only regular files");
  EXPECT_TRUE(fs::is_directory(sub));
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(names_in(dir_), (std::set<std::string>{"fifo", "sub"}));
}

TEST_F(OutputFileTest, RefusesAMissingFolderOrAnEmptyPath) {
  EXPECT_EQ(refusal(dir_ + "/no/out.json"), dir_ + "/no/out.json: folder " + dir_ + "/no: No such file or directory");
  put(dir_ + "/file", "x");
  EXPECT_EQ(refusal(dir_ + "/file/out.json"), dir_ + "/file/out.json: cannot stat: Not a directory");
  EXPECT_EQ(refusal(""), ": an empty path");
}

// In a child process (the limit and the ignored SIGXFSZ must not reach the test): writes 64 KiB
// to `path` under RLIMIT_FSIZE = 4 KiB, so write(2) fails with EFBIG as it would with ENOSPC on a
// full disk. Returns the moe::Error's exit code and message, "no error" if there was none.
std::pair<int, std::string> write_past_a_file_size_limit(const std::string& path) {
  int pipefd[2];
  MOE_CHECK(::pipe(pipefd) == 0, "pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  MOE_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    ::close(pipefd[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    const struct rlimit lim = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    std::string msg = "no error";
    int code = 0;
    try {
      write_output_atomically(path, std::string(64 * 1024, 'x'));
    } catch (const Error& e) {
      msg = e.what();
      code = e.exit_code();
    }
    ssize_t n = ::write(pipefd[1], msg.data(), msg.size());
    _exit(n == ssize_t(msg.size()) ? code : 100);
  }
  ::close(pipefd[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) msg.append(buf, size_t(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), msg};
}

TEST_F(OutputFileTest, AFailedWriteNamesThePathAndTheReasonAndLeavesTheOriginal) {
  const std::string out = dir_ + "/out.json";
  put(out, "old");
  const auto [code, msg] = write_past_a_file_size_limit(out);
  EXPECT_EQ(code, kExitInternal) << msg;
  EXPECT_EQ(msg, "cannot write " + out + ": File too large");
  EXPECT_EQ(slurp(out), "old");
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"out.json"}) << "the temporary is removed";
}

TEST_F(OutputFileTest, AnExceptionRemovesTheTemporary) {
  const std::string out = dir_ + "/out.json";
  put(out, "old");
  try {
    OutputFile f(out);
    f.write(std::string("half of it"));
    EXPECT_EQ(names_in(dir_).size(), 2u) << "the temporary sits next to the target";
    throw std::runtime_error("the writer failed midway");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(slurp(out), "old");
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"out.json"});
}

// The target is checked again at commit: a symlink put there meanwhile is left, not replaced.
TEST_F(OutputFileTest, CommitChecksTheTargetAgain) {
  const std::string out = dir_ + "/out.json", other = dir_ + "/other";
  put(other, "keep");
  OutputFile f(out);
  f.write(std::string("new"));
  fs::create_symlink(other, out);
  EXPECT_THROW(f.commit(), InputError);
  EXPECT_TRUE(fs::is_symlink(out));
  EXPECT_EQ(slurp(other), "keep");
  EXPECT_EQ(names_in(dir_), (std::set<std::string>{"other", "out.json"}));
}

}  // namespace
}  // namespace moe::test
