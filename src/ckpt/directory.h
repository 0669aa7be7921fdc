// The checkpoint directory of a run and the file-system steps that make saving crash-safe:
//   <run.dir>/checkpoints/step_NNNNNNNN/      a complete checkpoint (manifest.toml + shards)
//   <run.dir>/checkpoints/step_NNNNNNNN.tmp/  a save in progress, or one a crash interrupted
//   <run.dir>/checkpoints/latest              symlink to the newest complete step directory
// A step directory only gets its final name (an atomic rename) after every shard and the
// manifest are fsynced, so any directory without the .tmp suffix is complete; `latest` is
// replaced by renaming a new symlink over it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/core/durable_io.h"

namespace moe::ckpt {

std::string step_dir_name(int64_t step);  // "step_00000042"
std::string shard_file_name(int rank);    // "shard_00003.bin"

struct CheckpointEntry {
  int64_t step = 0;
  std::string dir;  // full path
};
// Complete checkpoints under a checkpoints/ directory, oldest first (.tmp ones never count).
std::vector<CheckpointEntry> list_checkpoints(const std::string& root);

// A checkpoint directory (holding manifest.toml), a run directory (its checkpoints/latest), or a
// checkpoints/ directory (its latest) -> the checkpoint directory. A missing, dangling or
// unreadable `latest` is an InputError naming it (and the newest complete checkpoint), never a
// fallback. Throws InputError naming `path`.
std::string resolve_checkpoint(const std::string& path);

// ---- durable file-system steps (throw moe::Error naming the path on failure) ----
using moe::fsync_dir;  // src/core/durable_io.h
// Writes a file and fsyncs it before returning.
void write_file_durably(const std::string& path, const std::string& text);
// Points root/latest at `name` atomically (a temporary symlink renamed over it).
void replace_latest(const std::string& root, const std::string& name);
// Removes the complete checkpoints beyond the newest `keep` (never `protect`) and every *.tmp
// directory (interrupted saves). Called by rank 0 only, with no other save in progress.
void prune_checkpoints(const std::string& root, int64_t keep, const std::string& protect);
void remove_stale_tmp(const std::string& root);

}  // namespace moe::ckpt
