// Files the user names for output (eval --out, export --out, bench --json, coord-check's files):
// written whole or not at all, and never over something that is not a file. The bytes go to a
// temporary in the same folder (so the final rename is atomic: a reader sees the old file or the
// new one), every write, fsync and close is checked, and the temporary is renamed only over a
// regular file or a new name: a device (as root, /dev/null would be replaced), a symlink, a FIFO
// or a directory is refused before anything is written. A failure, or an exception that unwinds
// past an OutputFile, removes the temporary and leaves the target as it was.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moe {

// "" when `path` may be written as an output (a regular file, or a new name in an existing
// folder); otherwise why not, e.g. "is a symbolic link, not a regular file; outputs replace only
// regular files" or "folder out: No such file or directory".
std::string output_path_problem(const std::string& path);

// Throws InputError (exit 2) "<path>: <problem>" when output_path_problem is not "".
// Commands call it before their expensive work, so that a bad --out fails at once.
void check_output_path(const std::string& path);

class OutputFile {
 public:
  // Checks `path` (InputError), then creates the temporary next to it (moe::Error on failure).
  explicit OutputFile(std::string path);
  ~OutputFile();  // removes the temporary unless commit() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Throws moe::Error "cannot write <path>: <strerror>" (the temporary removed).
  void write(const void* data, size_t bytes);
  void write(const std::string& text) { write(text.data(), text.size()); }
  // fsync and close the temporary, check the target again, rename it over the target and fsync
  // the folder. Returns the bytes written. Throws like write(), naming the step that failed.
  int64_t commit();

 private:
  [[noreturn]] void fail(const std::string& what, int err);  // discard(), then throw
  void discard() noexcept;                                    // close and remove the temporary

  std::string path_, tmp_;  // tmp_ is "" once renamed or removed
  int fd_ = -1;
  int64_t written_ = 0;
};

// `text` into `path` through an OutputFile.
void write_output_atomically(const std::string& path, const std::string& text);

}  // namespace moe
