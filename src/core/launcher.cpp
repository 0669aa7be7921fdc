// watch_launcher: the parent pid at start against getppid(), polled and checked before writes.
#include "src/core/launcher.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "src/core/error.h"

namespace moe {
namespace {

// Process-wide by nature: the parent is a property of the process, not of any object.
std::atomic<pid_t> g_parent{0};
std::atomic<int> g_rank{0};

}  // namespace

void stop_if_launcher_gone() {
  const pid_t p = g_parent.load(std::memory_order_relaxed);
  if (p == 0 || ::getppid() == p) return;
  char line[256];
  const int n = std::snprintf(line, sizeof line,
                              "moe: error: [rank %d] the launcher (parent pid %d) is gone: stopping before "
                              "writing anything more\n",
                              g_rank.load(), int(p));
  ssize_t ignored = ::write(STDERR_FILENO, line, size_t(n));  // may fail: the launcher held the pipe
  (void)ignored;
  ::_exit(kExitInternal);
}

void watch_launcher(int rank) {
  // Not PMIX_RANK: Open MPI sets it in a singleton too, whose parent is only the user's shell.
  const bool launched =
      std::getenv("OMPI_COMM_WORLD_SIZE") || (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_PROCID"));
  if (!launched || g_parent.load() != 0) return;
  g_rank.store(rank);
  g_parent.store(::getppid());
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      stop_if_launcher_gone();
    }
  }).detach();
}

}  // namespace moe
