// AppendFile: O_APPEND writes through write_all, each result checked.
#include "src/metrics/append_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/core/durable_io.h"
#include "src/core/error.h"

namespace moe::metrics {

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
}

void AppendFile::append(const std::string& text) {
  if (const int err = write_all(fd_, text.data(), text.size()))
    throw Error("cannot write " + path_ + ": " + std::strerror(err));
}

}  // namespace moe::metrics
