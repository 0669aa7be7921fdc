// One job per run directory. `moe train` holds <run.dir>/moe.lock for its whole life: the file
// is created with O_EXCL and names its holder (host, pid, Slurm job id), the holder keeps an
// fcntl lock on it (released by the kernel, or by the NFS lock manager, when the process dies)
// and touches it every kHeartbeatSeconds. A lock file left behind is stale, and taken over, when:
//   - its fcntl lock can be taken and the holder ran on this host (a dead process holds no lock);
//   - on a file system without working locks, the holder ran on this host and its pid is gone;
//   - the holder ran on another host and the file is older than kStaleSeconds (no heartbeat),
//     whatever the lock says: some shared file systems keep fcntl locks per node.
// A second job on a locked directory gets an InputError naming the holder. `moe sweep --run
// local` holds the same kind of lock on its out directory (sweep.lock).
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace moe::run {

constexpr int kHeartbeatSeconds = 10;
constexpr int kStaleSeconds = 60;  // 6 missed heartbeats

class RunDirLock {
 public:
  // Creates run_dir if needed and takes its lock, or throws InputError naming the holder.
  // `what` names the directory in messages ("run.dir", "the sweep's out directory").
  explicit RunDirLock(const std::string& run_dir, const std::string& file = "moe.lock",
                      const std::string& what = "run.dir");
  ~RunDirLock();  // stops the heartbeat, removes the lock file
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  void heartbeat();

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moe::run
