// The POSIX steps under every file this program writes, each result checked: a write loop that
// survives short writes and EINTR, and the fsync of a folder after a rename in it (without it
// the new name may not survive a crash). Shared by checkpoints, metrics and output files.
#pragma once
#include <cstddef>
#include <string>

namespace moe {

// Writes all `bytes` to fd. Returns 0, or the errno of the write that failed (ENOSPC for a
// write that wrote nothing without saying why).
int write_all(int fd, const void* data, size_t bytes);

// fsyncs a folder. Throws moe::Error "cannot fsync directory <dir>: <reason>".
void fsync_dir(const std::string& dir);

}  // namespace moe
