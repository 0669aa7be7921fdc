// open_regular_file: open without blocking, then fstat decides.
#include "src/core/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moe {

std::string open_regular_file(const std::string& path, int& fd, int64_t& bytes) {
  fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) why = std::string("cannot stat: ") + std::strerror(errno);
  else if (S_ISDIR(st.st_mode)) why = "is a directory";
  else if (S_ISFIFO(st.st_mode)) why = "is a FIFO, not a regular file";
  else if (S_ISCHR(st.st_mode)) why = "is a character device, not a regular file";
  else if (S_ISBLK(st.st_mode)) why = "is a block device, not a regular file";
  else if (S_ISSOCK(st.st_mode)) why = "is a socket, not a regular file";
  else if (!S_ISREG(st.st_mode)) why = "is not a regular file";
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
