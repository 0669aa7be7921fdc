// The watchdog thread: polls the start time of the current blocking call and aborts the job
// once it is older than the timeout.
#include "comm/watchdog.h"

#include <fcntl.h>
#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "src/core/error.h"

namespace moe::comm {

namespace {

constexpr int kHeartbeatBytes = 256;  // one fixed-size record, rewritten in place

std::string heartbeat_path(const std::string& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "/heartbeats/rank_%05d", rank);
  return dir + name;
}

// Comparable across processes and hosts (steady clocks are not).
int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int64_t Watchdog::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Watchdog::Watchdog(int rank) : rank_(rank) {
  if (::gethostname(host_, sizeof host_ - 1) != 0 || !host_[0]) std::snprintf(host_, sizeof host_, "unknown-host");
  for (char& c : host_)
    if (c == ' ') c = '_';  // one token in the heartbeat record
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (heartbeat_fd_ >= 0) {
    ::close(heartbeat_fd_);
    ::unlink(heartbeat_path(heartbeat_dir_, rank_).c_str());
  }
}

void Watchdog::set_timeout(double seconds) {
  timeout_s_.store(std::max(0.0, seconds), std::memory_order_relaxed);
  if (seconds > 0 && !thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();  // a new timeout changes the poll period
}

void Watchdog::set_heartbeat_dir(const std::string& dir, int world_size) {
  std::lock_guard<std::mutex> lk(mu_);
  if (heartbeat_fd_ >= 0) ::close(heartbeat_fd_);
  heartbeat_fd_ = -1;
  heartbeat_dir_ = dir;
  world_size_ = world_size;
  if (dir.empty()) return;
  if (!probe_) probe_ = std::make_unique<ProbeListener>();
  ::mkdir((dir + "/heartbeats").c_str(), 0755);  // every rank tries; EEXIST is fine
  // Best effort: without the file the watchdog still works, it only cannot name a culprit.
  heartbeat_fd_ = ::open(heartbeat_path(dir, rank_).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  beat(now_ns());
}

void Watchdog::beat(int64_t now) {
  if (heartbeat_fd_ < 0) return;
  const int64_t s = started_ns_.load(std::memory_order_acquire);
  const int64_t since = s ? s : ended_ns_.load(std::memory_order_relaxed);
  char line[kHeartbeatBytes];
  std::memset(line, ' ', sizeof line);
  const bool probed = probe_ && probe_->port() > 0 && !probe_->address().empty();
  const int n = std::snprintf(line, sizeof line, "beat_ms=%lld in=%s since_ms=%lld pid=%d host=%s addr=%s port=%d",
                              (long long)wall_ms(), s ? call_.load(std::memory_order_relaxed) : "-",
                              (long long)(since ? wall_ms() - (now - since) / 1000000 : 0), int(::getpid()), host_,
                              probed ? probe_->address().c_str() : "-", probed ? probe_->port() : 0);
  if (n > 0 && n < int(sizeof line)) line[n] = ' ';
  line[sizeof line - 1] = '\n';
  ssize_t ignored = ::pwrite(heartbeat_fd_, line, sizeof line, 0);
  (void)ignored;
}

std::string Watchdog::culprits(double period) const {
  if (heartbeat_dir_.empty()) return "";
  const int64_t now = wall_ms();
  const double stale_s = std::max(4 * period, 2.0);
  std::string out;
  int named = 0;
  std::vector<int> waiting;  // ranks in a collective like this one, with a probe address
  std::vector<std::string> hosts(world_size_);
  std::vector<ProbeTarget> targets;
  for (int r = 0; r < world_size_; ++r) {
    if (r == rank_) continue;
    char buf[kHeartbeatBytes + 1] = {};
    const int fd = ::open(heartbeat_path(heartbeat_dir_, r).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const ssize_t got = ::pread(fd, buf, kHeartbeatBytes, 0);
    ::close(fd);
    long long beat = 0, since = 0;
    int pid = 0, port = 0;
    char call[64] = {}, host[64] = {}, addr[64] = {};
    const int fields = got <= 0 ? 0
                                : std::sscanf(buf, "beat_ms=%lld in=%63s since_ms=%lld pid=%d host=%63s addr=%63s port=%d",
                                              &beat, call, &since, &pid, host, addr, &port);
    if (fields < 3) continue;
    char what[200];
    const double quiet = double(now - beat) * 1e-3;
    if (quiet > stale_s)
      std::snprintf(what, sizeof what, "rank %d has sent no heartbeat for %.1f s (stopped, or its node is gone)", r,
                    quiet);
    else if (std::strcmp(call, "-") == 0)
      std::snprintf(what, sizeof what, "rank %d is outside any collective for %.1f s (hung or far behind)", r,
                    since ? double(now - since) * 1e-3 : 0.0);
    else {  // waiting like this rank: a victim, unless the network between us is the fault
      if (fields == 7 && port > 0 && std::strcmp(addr, "-") != 0) {
        waiting.push_back(r);
        hosts[r] = host;
        targets.push_back({addr, port});
      }
      continue;
    }
    if (named++ < 4) out += (out.empty() ? "" : "; ") + std::string(what);
  }
  if (named > 4) out += "; " + std::to_string(named - 4) + " more";
  if (!out.empty() || targets.empty()) return out;
  // Every peer waits too. Which of them cannot be reached from here?
  const double probe_s = std::clamp(timeout() / 4, 0.5, 3.0);
  const std::vector<Reach> reach = probe(targets, probe_s);
  int silent = 0, refused = 0;
  for (size_t i = 0; i < reach.size(); ++i) {
    const int r = waiting[i];
    char what[200] = {};
    if (reach[i] == Reach::kSilent)
      std::snprintf(what, sizeof what, "rank %d on %s does not answer over the network within %.1f s (%s:%d)", r,
                    hosts[r].c_str(), probe_s, targets[i].address.c_str(), targets[i].port);
    else if (reach[i] == Reach::kRefused)
      std::snprintf(what, sizeof what, "rank %d on %s refuses connections (its process is gone)", r, hosts[r].c_str());
    else
      continue;
    silent += reach[i] == Reach::kSilent;
    refused += reach[i] == Reach::kRefused;
    if (named++ < 4) out += (out.empty() ? "" : "; ") + std::string(what);
  }
  if (reach.size() >= 2 && silent == int(reach.size()))
    return "no other rank answers over the network from " + std::string(host_) + ": the link of " + host_ +
           " is down, or the network is";
  if (named > 4) out += "; " + std::to_string(named - 4) + " more";
  return out;
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lk(mu_);
  // From the thread's start, so that a stop before its first poll is seen as a gap too.
  int64_t last_poll = now_ns(), rebased_start = -1, rebased_to = 0;
  while (!stop_) {
    const double t = timeout_s_.load(std::memory_order_relaxed);
    // Checking 20 times per timeout overshoots it by at most 5%; at most once a second.
    const double period = t > 0 ? std::clamp(t / 20, 0.01, 1.0) : 1.0;
    cv_.wait_for(lk, std::chrono::duration<double>(period));
    if (stop_ || t <= 0) continue;
    const int64_t now = now_ns();
    const int64_t s = started_ns_.load(std::memory_order_acquire);
    // Not scheduled for much longer than a period: this process was stopped (SIGSTOP, a
    // suspended machine). The wait it slept through says nothing about the other ranks.
    if (double(now - last_poll) * 1e-9 > std::max(4 * period, 1.0)) {
      rebased_start = s;
      rebased_to = now;
    }
    last_poll = now;
    beat(now);
    if (s == 0) continue;
    const double elapsed = double(now - (s == rebased_start ? rebased_to : s)) * 1e-9;
    if (elapsed < t) continue;
    const char* call = call_.load(std::memory_order_relaxed);
    // The same call still running (not a new one that began between the two loads)?
    if (started_ns_.load(std::memory_order_acquire) != s) continue;
    fire(call, elapsed, culprits(period));
  }
}

void Watchdog::fire(const char* call, double elapsed, const std::string& culprits) {
  char line[1536];
  std::snprintf(line, sizeof line,
                "moe: error: [rank %d] %s did not complete within %.0f s (waited %.1f s on %s): %s; stopping "
                "every rank (parallel.timeout_s)\n",
                rank_, call, timeout(), elapsed, host_,
                culprits.empty() ? "another rank hangs or died" : culprits.c_str());
  // One write, so lines from several ranks do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line, std::char_traits<char>::length(line));
  (void)ignored;
  // MPI_Abort ends a job within a second or two; when it blocks instead (a node cut off from its
  // launcher cannot deliver it), the alarm ends this process: the job is gone within the timeout.
  ::alarm(unsigned(std::clamp(timeout(), 5.0, 30.0)));
  MPI_Abort(MPI_COMM_WORLD, kExitTimeout);
  ::_exit(kExitTimeout);
}

}  // namespace moe::comm
