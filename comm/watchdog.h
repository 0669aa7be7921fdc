// The collective watchdog: a background thread that stops the job when one blocking collective
// on this rank has not completed within a timeout (a peer hangs, or died where no launcher
// noticed). MPI offers no timeout on its collectives, so without this a rank whose peer
// deadlocked would wait forever. Each call costs two relaxed atomic stores and a clock read;
// the thread polls a few times per timeout and never touches MPI until it gives up.
//
// Naming the culprit: with a heartbeat directory set (the run directory, seen by every rank),
// each rank's thread rewrites <dir>/heartbeats/rank_NNNNN at every poll: the wall-clock time,
// the blocking call it is in (or "-") and since when. A rank that gives up reads the others'
// files and names the ranks that are outside any collective (hung or far behind) or whose
// heartbeat stopped (the process is stopped, or its node is gone). A rank whose own thread was
// not scheduled for a while (the process itself was stopped) restarts its clock instead of
// blaming the others for a wait it slept through. When every other rank's heartbeat says it is
// waiting too (a node whose link went down while the shared file system still carries its
// heartbeats), the rank that gives up probes the others over TCP (comm/peer_probe.h) and names
// those that do not answer, with their hosts.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "comm/peer_probe.h"

namespace moe::comm {

class Watchdog {
 public:
  // rank names this process in the message. The thread starts with the first set_timeout > 0.
  explicit Watchdog(int rank);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Seconds a blocking call may take; 0 turns the watchdog off.
  void set_timeout(double seconds);
  double timeout() const { return timeout_s_.load(std::memory_order_relaxed); }

  // Marks the start and the end of a blocking call (`call` must be a string literal).
  void begin(const char* call) {
    call_.store(call, std::memory_order_relaxed);
    started_ns_.store(now_ns(), std::memory_order_release);
  }
  void end() {
    ended_ns_.store(now_ns(), std::memory_order_relaxed);
    started_ns_.store(0, std::memory_order_release);
  }
  // Where the heartbeat files go (see above); world_size ranks are read back.
  void set_heartbeat_dir(const std::string& dir, int world_size);

  // RAII form of begin/end around one call.
  class Scope {
   public:
    Scope(Watchdog* w, const char* call) : w_(w) {
      if (w_) w_->begin(call);
    }
    ~Scope() {
      if (w_) w_->end();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Watchdog* w_;
  };

  static int64_t now_ns();

 private:
  void run();
  // This rank's heartbeat file (one pwrite; no-op without a directory).
  void beat(int64_t now);
  // "rank 2 is outside any collective for 4.1 s (hung or far behind)", ...; failing that, the
  // ranks that do not answer a TCP probe; "" when none is known.
  std::string culprits(double period) const;
  // Prints one line and ends the job: MPI_Abort, with an alarm as a backstop in case the abort
  // itself blocks (MPI_Abort from a second thread is outside MPI_THREAD_FUNNELED's promise).
  [[noreturn]] void fire(const char* call, double elapsed, const std::string& culprits);

  int rank_;
  std::atomic<double> timeout_s_{0};
  std::atomic<int64_t> started_ns_{0};  // 0 = not inside a blocking call
  std::atomic<const char*> call_{""};
  std::atomic<int64_t> ended_ns_{0};  // when the last blocking call ended
  std::string heartbeat_dir_;         // guarded by mu_; "" = no heartbeats
  int world_size_ = 0;
  int heartbeat_fd_ = -1;
  std::unique_ptr<ProbeListener> probe_;  // with heartbeats: lets the other ranks test the path here
  char host_[64] = {};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moe::comm
