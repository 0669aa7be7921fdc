// The stop-signal handler (async-signal-safe: atomics, clock_gettime, write, _exit) and the
// thread that enforces run.stop_timeout_s.
#include "src/run/stop_signals.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <thread>

namespace moe::run {
namespace {

struct Known {
  int sig;
  const char* name;
};
constexpr Known kKnown[] = {{SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"}, {SIGUSR1, "SIGUSR1"},
                            {SIGUSR2, "SIGUSR2"}, {SIGHUP, "SIGHUP"}};

std::atomic<int> g_first{0};           // the first stop signal, 0 = none yet
std::atomic<int64_t> g_first_ns{0};    // when it arrived (CLOCK_MONOTONIC)
std::atomic<int64_t> g_timeout_ns{0};  // run.stop_timeout_s; 0 = no bound
std::atomic<bool> g_finished{false};
std::atomic<int> g_rank{-1};
std::atomic<bool> g_watching{false};
std::atomic<unsigned> g_caught{0};  // bit i: kKnown[i] has our handler
std::atomic<bool> g_exit_on_repeat{true};
std::atomic<int> g_count{0}, g_last{0};

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// nullptr for a signal not in kKnown (async-signal-safe).
const char* known_name(int sig) {
  for (const Known& k : kKnown)
    if (k.sig == sig) return k.name;
  return nullptr;
}

// Appends s to buf (async-signal-safe).
void append(char* buf, size_t cap, size_t& n, const char* s) {
  while (*s && n + 1 < cap) buf[n++] = *s++;
}

void append_int(char* buf, size_t cap, size_t& n, long v) {
  char digits[24];
  int d = 0;
  if (v < 0) {
    append(buf, cap, n, "-");
    v = -v;
  }
  do {
    digits[d++] = char('0' + v % 10);
    v /= 10;
  } while (v > 0 && d < 23);
  while (d > 0 && n + 1 < cap) buf[n++] = digits[--d];
}

[[noreturn]] void exit_at_once(int sig, const char* why) {
  char line[320];
  size_t n = 0;
  append(line, sizeof line, n, "moe: ");
  if (g_rank.load() >= 0) {
    append(line, sizeof line, n, "[rank ");
    append_int(line, sizeof line, n, g_rank.load());
    append(line, sizeof line, n, "] ");
  }
  append(line, sizeof line, n, why);
  append(line, sizeof line, n, known_name(sig) ? known_name(sig) : "a signal");
  append(line, sizeof line, n, ": exiting at once (exit ");
  append_int(line, sizeof line, n, 128 + sig);
  append(line, sizeof line, n, ") without a checkpoint of this step; `latest` is unchanged\n");
  ssize_t ignored = ::write(STDERR_FILENO, line, n);
  (void)ignored;
  ::_exit(128 + sig);
}

void on_signal(int sig) {
  const int saved_errno = errno;
  const int64_t now = monotonic_ns();
  g_count.fetch_add(1);
  g_last.store(sig);
  int none = 0;
  if (g_first.compare_exchange_strong(none, sig)) {
    g_first_ns.store(now);
  } else if (g_exit_on_repeat.load() && now - g_first_ns.load() >= int64_t(kRepeatSeconds * 1e9)) {
    exit_at_once(sig, "a second stop signal, ");
  }
  errno = saved_errno;
}

// Polls rather than waits: the bound may be set after the signal, and the thread must never
// hold up an exit.
void watch() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int sig = g_first.load();
    const int64_t bound = g_timeout_ns.load();
    if (sig == 0 || bound <= 0 || g_finished.load()) continue;
    if (monotonic_ns() - g_first_ns.load() > bound) exit_at_once(sig, "the stop did not finish within run.stop_timeout_s after ");
  }
}

}  // namespace

int signal_number(const std::string& name) {
  for (const Known& k : kKnown)
    if (name == k.name) return k.sig;
  return 0;
}

std::string signal_name(int sig) {
  const char* name = known_name(sig);
  return name ? name : "signal " + std::to_string(sig);
}

void catch_stop_signals(const std::vector<int>& signals, bool exit_on_repeat) {
  g_exit_on_repeat.store(exit_on_repeat);
  for (size_t i = 0; i < std::size(kKnown); ++i) {
    const Known& k = kKnown[i];
    bool wanted = false;
    for (int s : signals) wanted = wanted || s == k.sig;
    const unsigned bit = 1u << i;
    // A signal we never caught keeps what the process inherited (nohup's ignored SIGHUP).
    if (!wanted && !(g_caught.load() & bit)) continue;
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: a blocking read or write in progress (a checkpoint shard, MPI's sockets)
    // carries on instead of failing with EINTR.
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = wanted ? on_signal : SIG_DFL;
    ::sigaction(k.sig, &sa, nullptr);
    if (wanted) g_caught.fetch_or(bit);
    else g_caught.fetch_and(~bit);
  }
  if (!g_watching.exchange(true)) std::thread(watch).detach();
}

int stop_signal() { return g_first.load(); }
int stop_signal_count() { return g_count.load(); }
int last_stop_signal() { return g_last.load(); }

double seconds_since_stop_signal() {
  return g_first.load() ? double(monotonic_ns() - g_first_ns.load()) * 1e-9 : 0.0;
}

void set_stop_timeout(double seconds, int rank) {
  g_rank.store(rank);
  g_timeout_ns.store(seconds > 0 ? int64_t(seconds * 1e9) : 0);
}

void stop_finished() { g_finished.store(true); }

}  // namespace moe::run
