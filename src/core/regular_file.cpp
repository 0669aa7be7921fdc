// open_regular_file: open without blocking, then fstat decides; not_regular_file names the rest.
#include "src/core/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moe {

std::string not_regular_file(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISLNK(mode)) return "is a symbolic link, not a regular file";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(mode)) return "is a character device, not a regular file";
  if (S_ISBLK(mode)) return "is a block device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

std::string open_regular_file(const std::string& path, int& fd, int64_t& bytes) {
  fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct stat st {};
  const std::string why = ::fstat(fd, &st) != 0 ? std::string("cannot stat: ") + std::strerror(errno)
                                                : not_regular_file(st.st_mode);
  if (!why.empty()) {
    ::close(fd);
    fd = -1;
    return why;
  }
  // Back to blocking reads: a regular file never blocks, and plain read() loops stay simple.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  bytes = int64_t(st.st_size);
  return "";
}

}  // namespace moe
