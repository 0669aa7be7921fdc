// posix_spawn rather than fork: this process has initialized MPI, and posix_spawn does not
// duplicate its memory or its transports' state.
#include "launch/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "src/core/error.h"

namespace moe::launch {
namespace {

std::vector<std::string> read_start_env() {
  std::ifstream f("/proc/self/environ", std::ios::binary);
  std::vector<std::string> env;
  for (std::string item; std::getline(f, item, '\0');)
    if (!item.empty()) env.push_back(item);
  return env;
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

pid_t spawn_with(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                 posix_spawn_file_actions_t* fa, posix_spawnattr_t* attr = nullptr) {
  MOE_CHECK(!argv.empty(), "spawn: empty command");
  std::vector<char*> a = c_strings(argv), e = c_strings(env);
  // posix_spawnp searches our PATH; take the start-up PATH for the search too.
  std::string path = start_env("PATH");
  pid_t pid = 0;
  int rc;
  if (!path.empty() && argv[0].find('/') == std::string::npos) {
    rc = ENOENT;
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':') && rc == ENOENT;) {
      std::string full = (dir.empty() ? "." : dir) + "/" + argv[0];
      if (access(full.c_str(), X_OK) == 0) rc = posix_spawn(&pid, full.c_str(), fa, attr, a.data(), e.data());
    }
  } else {
    rc = posix_spawnp(&pid, argv[0].c_str(), fa, attr, a.data(), e.data());
  }
  if (rc != 0) throw Error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

std::vector<std::string> launch_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (const std::string& kv : read_start_env()) {
    std::string key = kv.substr(0, kv.find('='));
    if (!extra.count(key)) env.push_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

std::string start_env(const std::string& name) {
  for (const std::string& kv : read_start_env())
    if (kv.compare(0, name.size() + 1, name + "=") == 0) return kv.substr(name.size() + 1);
  return "";
}

std::string self_executable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  MOE_CHECK(n > 0, "cannot read /proc/self/exe: ", std::strerror(errno));
  return std::string(buf, size_t(n));
}

pid_t spawn(const std::vector<std::string>& argv_in, const std::vector<std::string>& env, const std::string& log,
            int parent_death_signal) {
  std::vector<std::string> argv = argv_in;
  if (parent_death_signal > 0) {
    // posix_spawn cannot set PR_SET_PDEATHSIG, so the child starts as this executable, which
    // sets it and execs the real program.
    argv = {self_executable(), kParentDeathExec, std::to_string(parent_death_signal), std::to_string(::getpid())};
    argv.insert(argv.end(), argv_in.begin(), argv_in.end());
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // mpirun forwards stdin to rank 0; a child must never read the terminal of `moe sweep`.
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  // Its own process group: Ctrl-C at the terminal reaches `moe sweep` alone, which passes the
  // stop on in the form each child handles (a SIGINT would make mpirun kill its ranks).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid;
  try {
    pid = spawn_with(argv, env, &fa, &attr);
  } catch (...) {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    throw;
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return pid;
}

void exec_with_parent_death(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "moe: error: %s needs <signal> <parent pid> <program> [args...]\n", kParentDeathExec);
    std::_Exit(kExitBadInput);
  }
  const int sig = std::atoi(argv[2]);
  const pid_t parent = pid_t(std::atol(argv[3]));
  if (::prctl(PR_SET_PDEATHSIG, sig) != 0) {
    std::fprintf(stderr, "moe: error: prctl(PR_SET_PDEATHSIG): %s\n", std::strerror(errno));
    std::_Exit(kExitInternal);
  }
  // The parent may have died between the spawn and the prctl: then nobody would tell us.
  if (::getppid() != parent) std::_Exit(128 + sig);
  ::execvp(argv[4], argv + 4);  // the environment came from spawn: its PATH is the start-up one
  std::fprintf(stderr, "moe: error: cannot start %s: %s\n", argv[4], std::strerror(errno));
  std::_Exit(127);
}

int wait_child(pid_t pid, bool nohang) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, nohang ? WNOHANG : 0);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return -1;
  MOE_CHECK(r == pid, "waitpid(", pid, "): ", std::strerror(errno));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int run_with_lines(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::function<void(const std::string&)>& on_line) {
  int fds[2];
  MOE_CHECK(pipe(fds) == 0, "pipe: ", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid = -1;
  try {
    pid = spawn_with(argv, env, &fa);
  } catch (...) {
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    close(fds[1]);
    throw;
  }
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, size_t(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      on_line(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
  }
  if (!pending.empty()) on_line(pending);
  close(fds[0]);
  return wait_child(pid);
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain =
        !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:%@") ==
                          std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace moe::launch
