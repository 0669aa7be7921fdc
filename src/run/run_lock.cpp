// The run-directory lock (see run_lock.h for the stale rule).
#include "src/run/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/core/error.h"
#include "src/run/identity.h"

namespace fs = std::filesystem;

namespace moe::run {
namespace {

struct Holder {
  std::string host = "?", job = "-";
  long pid = 0;
  std::string describe() const {
    std::string s = "host " + host + ", pid " + std::to_string(pid);
    if (job != "-") s += ", Slurm job " + job;
    return s;
  }
};

Holder read_holder(int fd) {
  char buf[512] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  Holder h;
  std::istringstream is(std::string(buf, n > 0 ? size_t(n) : 0));
  for (std::string kv; is >> kv;) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "host") h.host = v;
    if (k == "pid") h.pid = std::atol(v.c_str());
    if (k == "slurm_job") h.job = v;
  }
  return h;
}

// 0: locked; EAGAIN/EACCES: another process holds it; anything else: locks do not work here.
int try_lock(int fd) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  // Open-file-description locks stay with this descriptor whatever else the process opens and
  // closes; plain POSIX locks where the kernel lacks them.
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
  if (errno == EINVAL && ::fcntl(fd, F_SETLK, &fl) == 0) return 0;
  return errno;
}

void write_holder(int fd, const std::string& path) {
  std::ostringstream os;
  os << "host=" << hostname() << " pid=" << ::getpid() << " slurm_job=" << slurm_job() << " started="
     << std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()
     << "\n# moe train holds this run directory; see src/run/run_lock.h for when a left-over file is stale\n";
  const std::string text = os.str();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != ssize_t(text.size()) ||
      ::fsync(fd) != 0)
    throw Error("cannot write " + path + ": " + std::strerror(errno));
}

}  // namespace

RunDirLock::RunDirLock(const std::string& run_dir, const std::string& file, const std::string& what)
    : path_(run_dir + "/" + file) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec || !fs::is_directory(run_dir))
    throw InputError(what + " = \"" + run_dir + "\": cannot create the " + (what == "run.dir" ? "run directory" : "directory") +
                     (ec ? ": " + ec.message() : std::string(": not a directory")));
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0 && errno != EEXIST) throw InputError(path_ + ": cannot create the lock file: " + std::strerror(errno));
  if (fd_ < 0) {  // a lock file exists: is its holder alive?
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw InputError(path_ + ": cannot open the lock file: " + std::strerror(errno));
    const int lock = try_lock(fd_);
    const Holder h = read_holder(fd_);
    struct stat st {};
    ::fstat(fd_, &st);
    const double age = double(std::time(nullptr) - st.st_mtime);
    const bool here = h.host == hostname();
    bool alive;
    if (lock == EAGAIN || lock == EACCES) alive = true;
    else if (here) alive = lock != 0 && h.pid > 0 && (::kill(pid_t(h.pid), 0) == 0 || errno == EPERM);
    else alive = age < kStaleSeconds;
    if (alive) {
      ::close(fd_);
      fd_ = -1;
      throw InputError(what + " = \"" + run_dir + "\" is in use by another job (" + h.describe() + "; " + path_ +
                       "): give this job its own directory, or wait until that one ends");
    }
  } else if (const int lock = try_lock(fd_); lock == EAGAIN || lock == EACCES) {
    ::close(fd_);
    fd_ = -1;
    throw InputError(path_ + ": locked by another job that is starting");
  }
  write_holder(fd_, path_);
  thread_ = std::thread([this] { heartbeat(); });
}

RunDirLock::~RunDirLock() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) {
    ::unlink(path_.c_str());  // while still locked: no other job can have taken it over
    ::close(fd_);
  }
}

void RunDirLock::heartbeat() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, std::chrono::seconds(kHeartbeatSeconds), [this] { return stop_; }))
    ::futimens(fd_, nullptr);  // the mtime other hosts judge staleness by
}

}  // namespace moe::run
