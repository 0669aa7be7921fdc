// The training loop: data -> forward/backward -> gradient reduction -> optimizer -> expert-bias
// update, with metrics.jsonl and a progress line on rank 0. Everything it needs arrives through
// the config and the ParallelContext.
#pragma once
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/parallel_context.h"
#include "models/transformer.h"
#include "src/ckpt/checkpoint.h"
#include "src/config/config.h"
#include "src/core/error.h"
#include "src/data/source.h"
#include "src/metrics/append_file.h"
#include "src/optim/optimizer.h"
#include "src/optim/parameterization.h"

namespace moe::train {

// A logged step whose MoE layers drop more than this fraction of token assignments (capacity)
// carries a warning in the progress line and in metrics.jsonl.
constexpr double kDropWarnFraction = 0.10;

struct LayerLoad {
  double max_over_mean = 0;  // busiest expert's load / mean load
  double dropped = 0;        // fraction of assignments dropped
};

struct StepRecord {
  int64_t step = 0;
  models::LossParts loss;
  optim::StepInfo info;
  double seconds = 0, a2a_seconds = 0;
  bool skipped = false;  // non-finite gradients under nonfinite = "skip"
  std::vector<LayerLoad> layers;  // over the step's micro-steps
  double rows = 0;                 // rows this rank's experts processed in the step
  std::optional<double> val_loss;  // held-out cross-entropy, on evaluation steps
};

// Thrown by step() on every rank at once (the verdict comes from collectives) when the loss or
// the gradient is not finite under train.nonfinite = "stop"; nothing was applied or saved, so
// the last checkpoint stays the one to resume from. `moe train` prints it once and exits 3.
class NonFiniteStop : public Error {
 public:
  explicit NonFiniteStop(const std::string& msg) : Error(msg, kExitNonFinite) {}
};

// Thrown by train() on every rank at the same step boundary when a stop signal reached any rank
// (src/run/stop_signals.h), after the checkpoint of that step is written (none at step 0).
// `moe train` prints it once and exits kExitStopped.
class SignalStop : public Error {
 public:
  SignalStop(const std::string& msg) : Error(msg, kExitStopped) {}
};

// The debug.fault_* injection (tests only): throws, exits or hangs this rank at that step.
void inject_fault(const config::DebugConfig& d, int64_t step, int rank);

struct TrainerOptions {
  bool write_run_dir = true;  // resolved config, metrics.jsonl
  bool progress = true;       // print the progress line on rank 0
  bool checkpoints = true;    // train() saves every checkpoint.every steps and at the end
};

class Trainer {
 public:
  Trainer(const config::Config& cfg, comm::ParallelContext& ctx, TrainerOptions opt = {});
  ~Trainer();
  // Runs steps from the current one up to train.steps; stops early (SignalStop) when a stop
  // signal reached any rank, agreed at each step boundary.
  void train();
  // Writes the run directory's config.toml and param_table.txt and opens metrics.jsonl for
  // appending (rank 0). The constructor calls it when TrainerOptions::write_run_dir.
  void open_run_dir();
  // The identity and segment the checkpoints record (src/run/start.h).
  void set_run(const std::string& run_id, int64_t segment) {
    run_id_ = run_id;
    segment_ = segment;
  }
  // One optimizer step (the next one); returns its record.
  StepRecord step();
  // Mean cross-entropy over `batches` global batches of a source (no update): its sequences
  // [0, batches * train.batch), in micro-batches.
  double evaluate(const data::TokenSource& src, int64_t batches);
  // The held-out split (data.val_*; the synthetic language's stream), or null: no validation.
  const data::TokenSource* validation() const { return val_.get(); }
  // Whether step `s` (1-based) ends with a validation pass.
  bool evaluates_at(int64_t s) const;

  // Checkpoints (src/ckpt). The state this rank saves: views of the model, optimizer, biases.
  ckpt::TrainState checkpoint_state();
  // Saves into <run.dir>/checkpoints, keeping checkpoint.keep; collective. Returns the directory.
  std::string save_checkpoint();
  // Restores a checkpoint (or a run directory's latest), its step count included, so that the
  // LR schedule, Adam bias correction and data order continue exactly; weights and expert
  // biases only when !optimizer_state. Collective; errors are the same InputError on every rank.
  ckpt::LoadInfo load_checkpoint(const std::string& path, bool optimizer_state = true);

  models::Transformer& model() { return *model_; }
  optim::Optimizer& optimizer() { return *optim_; }
  const optim::ParamTable& table() const { return table_; }
  const config::Config& config() const { return cfg_; }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  const data::TokenSource& source() const { return *source_; }

 private:
  void upload(const data::LocalBatch& b, models::Batch& out);
  // debug.inject_nan_*: a NaN in this rank's loss or local gradient (tests only).
  void inject_nan(int64_t step, models::LossParts& loss);
  void log(const StepRecord& r);
  // save_checkpoint() inside train(): a failure prints one line (rank 0) and throws
  // comm::AgreedFailure on every rank.
  void save_agreed();
  // The stop signal of any rank (max over ranks; collective), 0 when none.
  int agreed_stop_signal();
  [[noreturn]] void stop_for_signal(int sig);

  config::Config cfg_;
  comm::ParallelContext& ctx_;
  TrainerOptions opt_;
  optim::ParamTable table_;
  DType dtype_;
  std::unique_ptr<models::Transformer> model_;
  std::unique_ptr<optim::Optimizer> optim_;
  std::unique_ptr<data::TokenSource> source_, val_;
  int64_t micro_ = 0, micro_steps_ = 1;  // sequences per rank per micro-step, micro-steps per step
  metrics::AppendFile metrics_;
  int64_t step_ = 0;  // optimizer steps done
  double started_ = 0;
  int64_t first_logged_step_ = 0;
  int64_t saved_step_ = -1;  // step of the checkpoint last saved or loaded (no second save of it)
  std::string last_checkpoint_;  // its directory
  std::string run_id_;
  int64_t segment_ = 1;
};

}  // namespace moe::train
