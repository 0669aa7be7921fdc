// How `moe train` starts in its run directory: a run's life is one or more segments (a first
// start, then resumes after a signal, a requeue or a crash), and every segment starts here.
//
//   no --resume     a directory without results starts a new run; one with results (metrics or
//                   a checkpoint) is refused, or wiped first with --overwrite
//   --resume auto   continues from the directory's latest checkpoint; starts the run over when
//                   it has none (a requeued job needs no person); a run already at train.steps
//                   is complete (exit 0)
//   --resume PATH   a checkpoint, or a run directory's latest: continues this run when the
//                   checkpoint is its own; a checkpoint of another run forks it into run.dir,
//                   which must then hold nothing (the parent is only read, and recorded)
//
// A checkpoint of another run is never continued in a directory that holds a run, and a resume
// that changes what the run computes is refused unless allowed (src/run/config_changes.h).
// Each segment keeps its config as config.<start step>.toml; a resume or fork is logged as an
// event line in metrics.jsonl ({"event": ..., "at_step": ...}; step records are unchanged).
#pragma once
#include <set>
#include <string>
#include <vector>

#include "src/config/config.h"
#include "src/run/config_changes.h"
#include "src/run/identity.h"

namespace moe::run {

struct StartRequest {
  std::string resume;  // "", "auto", or a checkpoint or run directory
  bool overwrite = false;
  std::set<std::string> allow_changes;  // --allow-change KEY
};

enum class StartKind { Fresh, Continue, Fork, Complete };

struct StartPlan {
  StartKind kind = StartKind::Fresh;
  std::string checkpoint;  // Continue, Fork, Complete: the checkpoint directory
  int64_t step = 0;        // the step training starts from
  int64_t segment = 1;     // 1 for a fresh run
  RunIdentity identity;    // the run's (new for Fresh and Fork)
  bool write_identity = false;
  bool wipe = false;                  // remove the directory's results first
  std::vector<ConfigChange> changes;  // against the checkpoint's config (safe and allowed ones)
  std::string note;                   // one line for the start banner ("" for a plain start)
};

// Decides how to start (rank 0, with the run-directory lock held; reads only). Bad input (a
// foreign checkpoint, a refused change, a corrupt identity.toml) throws InputError, one line.
StartPlan plan_start(const std::string& run_dir, const config::Config& cfg, const StartRequest& req);
// The plan as text and back, for the other ranks (they load the checkpoint too).
std::string plan_to_text(const StartPlan& p);
StartPlan plan_from_text(const std::string& text);

// Applies the plan to the directory (rank 0, once the checkpoint has loaded on every rank):
// wipes, writes identity.toml, cuts metrics.jsonl after the start step, writes
// config.<step>.toml. Nothing is removed before this point, so a failed resume loses nothing.
void begin_segment(const std::string& run_dir, const StartPlan& p, const config::Config& cfg);
// Removes the run a directory holds: metrics.jsonl, checkpoints/, identity.toml, config.toml,
// config.<step>.toml and param_table.txt; other files (a sweep's run.toml, logs) stay.
void wipe_run(const std::string& run_dir);
// The metrics.jsonl line that records a resume or fork ("" for a fresh start).
std::string segment_event(const StartPlan& p);

// After a resume from step `step`: metrics.jsonl keeps only the records up to that step (the
// steps after it are trained again), cut in place so an open appending writer stays valid.
void truncate_metrics_after(const std::string& run_dir, int64_t step);

}  // namespace moe::run
