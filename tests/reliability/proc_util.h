// Running the real `moe` binary under mpirun from a test, as a user would: separate stdout and
// stderr, a wall-clock limit (a hang is a failure, never a stuck test), the exit status, and the
// rank processes (found through /proc) so that a test can kill one of them.
#pragma once
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/child_env.h"

namespace moe::test {

namespace fs = std::filesystem;

inline const std::string kMoe = std::string(MOE_BINARY_DIR) + "/bin/moe";
inline const std::string kMpirun = MOE_MPIEXEC;
inline const std::string kInputs = std::string(MOE_SOURCE_DIR) + "/tests/inputs";

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

// `mpirun -np <np> moe <args>` (np = 0: the binary alone, a singleton).
inline std::vector<std::string> moe_cmd(int np, const std::vector<std::string>& args) {
  std::vector<std::string> c;
  if (np > 0) c = {kMpirun, "-np", std::to_string(np)};
  c.push_back(kMoe);
  c.insert(c.end(), args.begin(), args.end());
  return c;
}

struct Proc {
  pid_t pid = -1;
  std::string out_path, err_path;
  std::chrono::steady_clock::time_point started;
};

// Starts argv with stdout/stderr into files, in its own process group, in directory `cwd`.
// The MPI environment of the test itself (if any) is not passed on. `in_child` runs in the child
// just before exec (a resource limit, a signal disposition that exec keeps).
inline Proc spawn(const std::vector<std::string>& argv, const std::string& log_prefix,
                  const std::string& cwd = "", const std::function<void()>& in_child = nullptr) {
  Proc p;
  p.out_path = log_prefix + ".out";
  p.err_path = log_prefix + ".err";
  std::fflush(nullptr);
  p.started = std::chrono::steady_clock::now();
  p.pid = ::fork();
  if (p.pid == 0) {
    ::setpgid(0, 0);
    if (!std::freopen(p.out_path.c_str(), "w", stdout) ||
        !std::freopen(p.err_path.c_str(), "w", stderr))
      _exit(127);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(127);
    drop_mpi_environment();
    if (in_child) in_child();
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    _exit(127);
  }
  return p;
}

struct Result {
  int code = -1;  // exit code, or 128 + signal
  bool timed_out = false;
  bool core_dumped = false;
  double seconds = 0;
  long max_rss_kb = 0;  // of the process itself (a singleton's rank; mpirun otherwise)
  std::string out, err;
};

// Waits up to `limit_s`; on timeout kills the process group (mpirun and its ranks).
inline Result wait_for(const Proc& p, double limit_s) {
  Result r;
  int status = 0;
  struct rusage ru {};
  for (;;) {
    pid_t w = ::wait4(p.pid, &status, WNOHANG, &ru);
    if (w == p.pid) break;
    if (seconds_since(p.started) > limit_s) {
      r.timed_out = true;
      ::kill(-p.pid, SIGKILL);
      ::wait4(p.pid, &status, 0, &ru);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.seconds = seconds_since(p.started);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.core_dumped = WIFSIGNALED(status) && WCOREDUMP(status);
  r.max_rss_kb = ru.ru_maxrss;
  r.out = slurp(p.out_path);
  r.err = slurp(p.err_path);
  return r;
}

inline Result run(const std::vector<std::string>& argv, const std::string& log_prefix,
                  double limit_s, const std::string& cwd = "") {
  return wait_for(spawn(argv, log_prefix, cwd), limit_s);
}

// /proc/<pid>/stat fields: state (3rd) and ppid (4th).
inline bool proc_stat(pid_t pid, char& state, pid_t& ppid) {
  std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream is(s.substr(close + 2));
  is >> state >> ppid;
  return bool(is);
}

// Alive = exists and is not a zombie (a killed rank whose parent has not reaped it yet is dead).
inline bool alive(pid_t pid) {
  char st = 0;
  pid_t pp = 0;
  return proc_stat(pid, st, pp) && st != 'Z' && st != 'X';
}

// The ranks mpirun started: its children running `moe`, keyed by OMPI_COMM_WORLD_RANK.
inline std::map<int, pid_t> rank_pids(pid_t mpirun) {
  std::map<int, pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    char st = 0;
    pid_t pp = 0;
    if (pid <= 0 || !proc_stat(pid, st, pp) || pp != mpirun) continue;
    std::string env = slurp("/proc/" + std::to_string(pid) + "/environ");
    const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
    for (size_t i = 0; i < env.size();) {
      size_t end = env.find('\0', i);
      if (end == std::string::npos) end = env.size();
      if (env.compare(i, key.size(), key) == 0) out[std::atoi(env.c_str() + i + key.size())] = pid;
      i = end + 1;
    }
  }
  ::closedir(d);
  return out;
}

// The notice mpirun itself prints when ranks exit non-zero after MPI_Finalize (the agreed exits:
// bad input, a non-finite stop). Not ours, and harmless; any other line is not expected.
inline bool is_mpirun_notice(const std::string& l) {
  static const std::regex re(
      R"(^-+$|^Primary job +terminated normally|^a non-zero exit code|^(mpirun|mpiexec) detected that one or more processes exited|^the job to be terminated|^ +Process name:|^ +Exit code:|^\s*$)");
  return std::regex_search(l, re);
}

// A fresh scratch directory for one test: <gtest TempDir>/moe_<name>_<pid>.
inline std::string scratch_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "moe_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// a followed by b (command-line pieces).
inline std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// `moe train` of the tiny model in tests/inputs/base.toml into run_dir, then `more`.
inline std::vector<std::string> train_base(const std::string& run_dir, std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"train", "--config", kInputs + "/base.toml", "--set", "run.dir=" + run_dir};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Lines of `text` starting with `prefix`.
// "step loss" of every step record in <run_dir>/metrics.jsonl, in order (the loss as printed:
// equal iff bit-equal).
inline std::vector<std::string> step_losses(const std::string& run_dir) {
  std::vector<std::string> out;
  static const std::regex re(R"re(^\{"step":(\d+),"loss":([^,]*),)re");
  std::smatch m;
  for (const std::string& l : split_lines(slurp(run_dir + "/metrics.jsonl")))
    if (std::regex_search(l, m, re)) out.push_back(m[1].str() + " " + m[2].str());
  return out;
}

// Waits until the run has logged at least `n` steps (false when the process exits first or the
// limit passes).
inline bool wait_steps(const Proc& p, const std::string& run_dir, size_t n, double limit_s = 90) {
  while (seconds_since(p.started) < limit_s && alive(p.pid)) {
    if (step_losses(run_dir).size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The XXH64 of every shard of a checkpoint, from its manifest: equal iff the saved bytes are.
inline std::vector<std::string> shard_checksums(const std::string& checkpoint) {
  std::vector<std::string> out;
  for (const std::string& l : split_lines(slurp(checkpoint + "/manifest.toml")))
    if (l.find("checksum = '") != std::string::npos) out.push_back(l);
  return out;
}

inline int count_prefixed(const std::string& text, const std::string& prefix) {
  int n = 0;
  for (const std::string& l : split_lines(text))
    if (l.rfind(prefix, 0) == 0) ++n;
  return n;
}

// Exactly one "moe: error: " line, containing `expect`.
inline void expect_one_error(const Result& r, const std::string& expect, const std::string& where) {
  EXPECT_EQ(count_prefixed(r.err, "moe: error: "), 1) << where << "\n" << r.err;
  EXPECT_NE(r.err.find(expect), std::string::npos) << where << ": no \"" << expect << "\" in\n" << r.err;
  EXPECT_FALSE(r.timed_out) << where;
}

}  // namespace moe::test
