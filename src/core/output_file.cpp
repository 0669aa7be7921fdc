// OutputFile: lstat decides what the target is (a symlink counts as itself, not as what it
// points at), O_EXCL creates the temporary, rename(2) replaces the target.
#include "src/core/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "src/core/durable_io.h"
#include "src/core/error.h"
#include "src/core/regular_file.h"

namespace moe {
namespace {

std::string folder_of(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

std::string output_path_problem(const std::string& path) {
  if (path.empty()) return "an empty path";
  if (path.back() == '/') return "names a directory (ends in /)";
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    const std::string what = not_regular_file(st.st_mode);
    return what.empty() ? "" : what + "; outputs replace only regular files";
  }
  if (errno != ENOENT) return std::string("cannot stat: ") + std::strerror(errno);
  const std::string folder = folder_of(path);
  if (::stat(folder.c_str(), &st) != 0) return "folder " + folder + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "folder " + folder + ": " + std::strerror(ENOTDIR);
  return "";
}

void check_output_path(const std::string& path) {
  const std::string why = output_path_problem(path);
  if (!why.empty()) throw InputError(path + ": " + why);
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  check_output_path(path_);
  struct stat st {};
  const bool replaces = ::lstat(path_.c_str(), &st) == 0;
  // The pid keeps two processes writing the same output apart; O_EXCL never opens what is there.
  for (int i = 0; fd_ < 0; ++i) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + (i ? "." + std::to_string(i) : "");
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || i == 100)) {
      const int err = errno;
      const std::string tmp = tmp_;
      tmp_.clear();  // not ours to remove
      throw Error("cannot create " + tmp + " (for " + path_ + "): " + std::strerror(err));
    }
  }
  // A replaced file keeps its permissions (a user who made it private keeps it private).
  if (replaces && ::fchmod(fd_, st.st_mode & 0777) != 0) fail("cannot set the permissions of", errno);
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

void OutputFile::fail(const std::string& what, int err) {
  discard();
  throw Error(what + " " + path_ + ": " + std::strerror(err));
}

void OutputFile::write(const void* data, size_t bytes) {
  MOE_CHECK(fd_ >= 0, path_, ": written after commit() or a failure");
  if (const int err = write_all(fd_, data, bytes)) fail("cannot write", err);
  written_ += int64_t(bytes);
}

int64_t OutputFile::commit() {
  MOE_CHECK(fd_ >= 0, path_, ": committed twice or after a failure");
  // fsync and close report what write() could not: delayed allocation on a full disk, NFS.
  if (::fsync(fd_) != 0) fail("cannot fsync", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot close", errno);
  // Checked again: the path may have become a link or a device while the data was written
  // (rename would replace the link itself, or the device).
  try {
    check_output_path(path_);
  } catch (const InputError&) {
    discard();
    throw;
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + tmp_ + " to", errno);
  tmp_.clear();
  fsync_dir(folder_of(path_));
  return written_;
}

void write_output_atomically(const std::string& path, const std::string& text) {
  OutputFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace moe
