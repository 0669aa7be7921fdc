// A run's identity: a random id made when the run starts at step 0, written to
// <run.dir>/identity.toml and into every checkpoint's manifest (run_id), so that a resume can
// tell "this run's checkpoint" from "a checkpoint of another run of the same shape". A run
// started from another run's checkpoint (a fork, always into a new run.dir) gets a new id and
// records its parent: the parent's id, the checkpoint and its step.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace moe::run {

struct RunIdentity {
  std::string id;               // 32 lowercase hex digits
  std::string created;          // UTC, ISO 8601
  std::string host, slurm_job;  // where it was made ("-" outside Slurm)
  // A fork: where it came from (parent_id is "" when the checkpoint predates run ids).
  bool forked = false;
  std::string parent_id, parent_checkpoint;
  int64_t parent_step = 0;
};

std::string identity_file(const std::string& run_dir);  // <run_dir>/identity.toml
// A fresh identity (id from /dev/urandom; the time, host and Slurm job of this process).
RunIdentity new_identity();
// The identity a run directory holds, or nullopt when it has none. A file that exists but does
// not parse is an InputError naming it (never silently replaced).
std::optional<RunIdentity> read_identity(const std::string& run_dir);
// Writes identity.toml whole or not at all (src/core/output_file.h).
void write_identity(const std::string& run_dir, const RunIdentity& id);
// This machine's name ("unknown-host" when it has none), this process's Slurm job id ("-"
// outside Slurm), and the time now in UTC, ISO 8601.
std::string hostname();
std::string slurm_job();
std::string utc_now();
// "run 3f2a...c1 (forked from run 9b0e...77 at step 200)" for messages.
std::string describe(const RunIdentity& id);

}  // namespace moe::run
