// One job per run directory. `moe train` holds <run.dir>/moe.lock for its whole life: the file
// is created with O_EXCL and names its holder (host, pid, Slurm job id), the holder keeps an
// fcntl lock on it (released by the kernel, or by the NFS lock manager, when the process dies)
// and touches it every kHeartbeatSeconds. A lock file left behind is stale, and taken over, when:
//   - its fcntl lock can be taken and the holder ran on this host (a dead process holds no lock);
//   - on a file system without working locks, the holder ran on this host and its pid is gone;
//   - the holder ran on another host and the file is older than kStaleSeconds (no heartbeat),
//     whatever the lock says: some shared file systems keep fcntl locks per node.
// A second job on a locked directory gets an InputError naming the holder.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace moe::train {

constexpr int kHeartbeatSeconds = 10;
constexpr int kStaleSeconds = 60;  // 6 missed heartbeats

class RunDirLock {
 public:
  // Creates run_dir if needed and takes its lock, or throws InputError naming the holder.
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();  // stops the heartbeat, removes the lock file
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  static std::string file_name(const std::string& run_dir) { return run_dir + "/moe.lock"; }

 private:
  void heartbeat();

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// What a run directory already holds. Without --resume, a directory with results (a non-empty
// metrics.jsonl or a complete checkpoint) is refused unless `overwrite`, which removes them
// (metrics.jsonl, checkpoints/, config.toml, param_table.txt) so that nothing mixes.
// Rank 0, with the lock held.
void prepare_run_dir(const std::string& run_dir, bool resume, bool overwrite);

// After a resume from step `step`: metrics.jsonl keeps only the records up to that step (the
// steps after it are trained again), cut in place so an open appending writer stays valid.
void truncate_metrics_after(const std::string& run_dir, int64_t step);

}  // namespace moe::train
