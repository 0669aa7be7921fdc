// Opening an input file the user named (a config, a data file) without ever blocking: a FIFO
// would block open() or read() forever and a device reads as an endless or empty file, so only
// regular files are accepted, and what else the path is gets named in the error (in the same
// words as for output files, src/core/output_file.h).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>

namespace moe {

// "" for a regular file's st_mode; otherwise what the file is instead: "is a directory", "is a
// FIFO, not a regular file", "is a character device, not a regular file", ...
std::string not_regular_file(mode_t mode);

// Opens `path` read-only (O_NONBLOCK, so a FIFO cannot block). Returns "" and the descriptor
// and size of a regular file in fd / bytes; otherwise closes what it opened and returns why:
// "cannot open: <strerror>", "is a directory", "is a FIFO, not a regular file", ...
std::string open_regular_file(const std::string& path, int& fd, int64_t& bytes);

}  // namespace moe
