// The watchdog thread: polls the start time of the current blocking call and aborts the job
// once it is older than the timeout.
#include "comm/watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "src/core/error.h"

namespace moe::comm {

int64_t Watchdog::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::set_timeout(double seconds) {
  timeout_s_.store(std::max(0.0, seconds), std::memory_order_relaxed);
  if (seconds > 0 && !thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();  // a new timeout changes the poll period
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    const double t = timeout_s_.load(std::memory_order_relaxed);
    // Checking 20 times per timeout overshoots it by at most 5%; at most once a second.
    const double period = t > 0 ? std::clamp(t / 20, 0.01, 1.0) : 1.0;
    cv_.wait_for(lk, std::chrono::duration<double>(period));
    if (stop_ || t <= 0) continue;
    const int64_t s = started_ns_.load(std::memory_order_acquire);
    if (s == 0) continue;
    const double elapsed = double(now_ns() - s) * 1e-9;
    if (elapsed < t) continue;
    const char* call = call_.load(std::memory_order_relaxed);
    // The same call still running (not a new one that began between the two loads)?
    if (started_ns_.load(std::memory_order_acquire) != s) continue;
    fire(call, elapsed);
  }
}

void Watchdog::fire(const char* call, double elapsed) {
  char line[512];
  std::snprintf(line, sizeof line,
                "moe: error: [rank %d] %s did not complete within %.0f s (waited %.1f s): another "
                "rank hangs or died; stopping every rank (parallel.timeout_s)\n",
                rank_, call, timeout(), elapsed);
  // One write, so lines from several ranks do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line, std::char_traits<char>::length(line));
  (void)ignored;
  ::alarm(30);
  MPI_Abort(MPI_COMM_WORLD, kExitTimeout);
  ::_exit(kExitTimeout);
}

}  // namespace moe::comm
