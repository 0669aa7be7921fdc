// Streaming shard I/O: a streambuf that writes to a file descriptor and hashes what passes
// through, so a shard never needs a second in-memory copy while it is written.
#include "src/ckpt/shard_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <cerrno>
#include <cstring>
#include <istream>
#include <ostream>
#include <streambuf>
#include <vector>

#include "src/ckpt/checksum.h"

namespace moe::ckpt {
namespace {

class HashingFileBuf : public std::streambuf {
 public:
  explicit HashingFileBuf(int fd) : fd_(fd), buf_(1 << 20) {
    setp(buf_.data(), buf_.data() + buf_.size());
  }
  bool failed() const { return err_ != 0; }
  int error() const { return err_; }
  int64_t written() const { return written_; }
  uint64_t digest() const { return hash_.digest(); }

 protected:
  int_type overflow(int_type c) override {
    if (!flush_buffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return flush_buffer() ? 0 : -1; }

 private:
  bool flush_buffer() {
    const char* p = pbase();
    size_t left = size_t(pptr() - pbase());
    hash_.update(p, left);
    written_ += int64_t(left);
    while (left > 0 && !err_) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        err_ = n < 0 ? errno : ENOSPC;
      else
        p += n, left -= size_t(n);
    }
    setp(buf_.data(), buf_.data() + buf_.size());
    return !err_;
  }
  int fd_;
  std::vector<char> buf_;
  Xxh64 hash_;
  int64_t written_ = 0;
  int err_ = 0;
};

// Reads from memory that is already verified.
class MemoryBuf : public std::streambuf {
 public:
  MemoryBuf(char* p, size_t n) { setg(p, p, p + n); }
};

}  // namespace

WrittenShard write_shard(const std::string& path, const Shard& shard) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create " + path + ": " + std::strerror(errno));
  HashingFileBuf buf(fd);
  try {
    std::ostream os(&buf);
    boost::archive::binary_oarchive ar(os);
    ar << shard;
    os.flush();
  } catch (const boost::archive::archive_exception& e) {
    ::close(fd);
    // A failed write surfaces as Boost's "output stream error": the system's reason is the news.
    if (buf.failed()) throw Error("cannot write " + path + ": " + std::strerror(buf.error()));
    throw Error("cannot serialize " + path + ": " + e.what());
  }
  int err = buf.pubsync() != 0 || buf.failed() ? buf.error() : 0;
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (err) throw Error("cannot write " + path + ": " + std::strerror(err));
  return {buf.written(), buf.digest()};
}

Shard read_shard(const std::string& path, int64_t bytes, uint64_t checksum) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      throw InputError(path + ": shard file missing (listed in manifest.toml)", true);
    throw InputError(path + ": cannot open shard: " + std::strerror(errno), true);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size != bytes) {
    int64_t have = int64_t(st.st_size);
    ::close(fd);
    throw InputError(path + ": shard is " + std::to_string(have) + " bytes, the manifest says " +
                         std::to_string(bytes) + " (truncated or overwritten)",
                     true);
  }
  std::vector<char> data(static_cast<size_t>(bytes));
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  if (got != data.size()) throw InputError(path + ": cannot read the whole shard", true);
  const uint64_t h = xxh64(data.data(), data.size());
  if (h != checksum)
    throw InputError(path + ": checksum mismatch (xxh64 " + hex64(h) + ", the manifest says " +
                         hex64(checksum) + "): the shard is corrupt",
                     true);
  Shard shard;
  try {
    MemoryBuf mb(data.data(), data.size());
    std::istream is(&mb);
    boost::archive::binary_iarchive ar(is);
    ar >> shard;
  } catch (const std::exception& e) {
    throw InputError(path + ": cannot parse the shard: " + e.what(), true);
  }
  if (shard.version != kFormatVersion)
    throw InputError(path + ": shard format version " + std::to_string(shard.version), true);
  return shard;
}

}  // namespace moe::ckpt
