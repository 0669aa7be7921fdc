// The collective watchdog: a background thread that stops the job when one blocking collective
// on this rank has not completed within a timeout (a peer hangs, or died where no launcher
// noticed). MPI offers no timeout on its collectives, so without this a rank whose peer
// deadlocked would wait forever. Each call costs two relaxed atomic stores and a clock read;
// the thread polls a few times per timeout and never touches MPI until it gives up.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace moe::comm {

class Watchdog {
 public:
  // rank names this process in the message. The thread starts with the first set_timeout > 0.
  explicit Watchdog(int rank) : rank_(rank) {}
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
  void end() { started_ns_.store(0, std::memory_order_release); }

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
  // Prints one line and ends the job: MPI_Abort, with an alarm as a backstop in case the abort
  // itself blocks (MPI_Abort from a second thread is outside MPI_THREAD_FUNNELED's promise).
  [[noreturn]] void fire(const char* call, double elapsed);

  int rank_;
  std::atomic<double> timeout_s_{0};
  std::atomic<int64_t> started_ns_{0};  // 0 = not inside a blocking call
  std::atomic<const char*> call_{""};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moe::comm
