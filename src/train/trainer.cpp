// Training loop, metrics and progress output.
#include "src/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "comm/agree.h"
#include "models/host_batch.h"
#include "src/ckpt/directory.h"
#include "src/core/error.h"
#include "src/core/launcher.h"
#include "src/data/held_out.h"
#include "src/metrics/flops.h"
#include "src/metrics/json.h"
#include "src/run/stop_signals.h"
#include "src/train/run_metrics.h"

namespace moe::train {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_duration(double s) {
  int64_t t = int64_t(std::max(0.0, s) + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

std::string fmt_rate(double r) {
  char buf[32];
  if (r >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", r);
  return buf;
}

}  // namespace

Trainer::Trainer(const config::Config& cfg, comm::ParallelContext& ctx, TrainerOptions opt)
    : cfg_(cfg), ctx_(ctx), opt_(opt), table_(optim::make_param_table(cfg)) {
  // train.dtype = "bf16" is mixed precision: f32 master weights, gradients and optimizer state;
  // bf16 weight copies and activations for the GEMMs and attention (models/transformer.h).
  dtype_ = DType::F32;
  const DType compute = cfg_.train.dtype == "bf16" ? DType::BF16 : DType::F32;
  model_ = std::make_unique<models::Transformer>(cfg_, table_, ctx_, dtype_, compute);
  model_->init_params(uint64_t(cfg_.run.seed));
  optim_ = std::make_unique<optim::Optimizer>(cfg_.optim, cfg_.train.steps, table_, model_->params(),
                                              ctx_, cfg_.parallel.zero1);
  source_ = data::make_source(cfg_.data, cfg_.model.vocab, cfg_.model.seq_len);
  micro_ = model_->local_batch();
  micro_steps_ = cfg_.train.batch / ctx_.world->size() / micro_;
  // The same held-out sequences at every evaluation, spread over the split, never one twice.
  if (cfg_.train.eval_batches > 0 && data::has_held_out(cfg_.data))
    val_ = data::make_eval_source(cfg_.data, cfg_.model.vocab, cfg_.model.seq_len, cfg_.train.eval_batches,
                                  cfg_.train.batch, "train.eval_batches");
  if (opt_.write_run_dir) open_run_dir();
}

void Trainer::open_run_dir() {
  if (ctx_.world->rank() != 0) return;
  // A run directory that cannot be made is the user's input (run.dir), seen by rank 0 only:
  // the caller's agreement (comm::run_agreed) stops every rank with this one line. Every
  // write is checked (a full disk names the file and the reason).
  std::error_code ec;
  std::filesystem::create_directories(cfg_.run.dir, ec);
  if (ec || !std::filesystem::is_directory(cfg_.run.dir))
    throw InputError("run.dir = \"" + cfg_.run.dir + "\": cannot create the run directory" +
                     (ec ? ": " + ec.message() : std::string(": not a directory")));
  stop_if_launcher_gone();
  ckpt::write_file_durably(cfg_.run.dir + "/config.toml", config::to_toml(cfg_));
  ckpt::write_file_durably(cfg_.run.dir + "/param_table.txt", optim::format_table(table_, "text"));
  metrics_.open(cfg_.run.dir + "/" + kMetricsFile);
}

Trainer::~Trainer() = default;

void Trainer::upload(const data::LocalBatch& b, models::Batch& out) {
  const models::Batch host = models::host_batch(b);
  const int64_t n = host.inputs.numel();
  // Queued without a host wait (Backend::upload); the host tensors may go at once.
  out.inputs = Tensor::empty({n}, DType::I32, ctx_.device());
  out.targets = Tensor::empty({n}, DType::I32, ctx_.device());
  ctx_.backend->upload(out.inputs.raw(), host.inputs.raw(), host.inputs.nbytes());
  ctx_.backend->upload(out.targets.raw(), host.targets.raw(), host.targets.nbytes());
}

StepRecord Trainer::step() {
  const double t0 = now();
  StepRecord r;
  r.step = step_ + 1;
  inject_fault(cfg_.debug, r.step, ctx_.world->rank());
  model_->params().zero_grads();
  // Gradient accumulation: each micro-step adds its share of the step's mean loss gradient.
  for (int64_t m = 0; m < micro_steps_; ++m) {
    data::LocalBatch lb;
    data::load_batch(*source_, step_, cfg_.train.batch, cfg_.model.seq_len, ctx_.world->rank(),
                     ctx_.world->size(), lb, micro_, m);
    models::Batch batch;
    upload(lb, batch);
    r.loss += model_->run(batch, /*backward=*/true, /*new_step=*/m == 0);
    for (models::MoeLayer* l : model_->moe_layers()) {
      r.a2a_seconds += l->stats().a2a_seconds;
      r.rows += double(l->stats().recv_rows);
    }
  }
  for (models::MoeLayer* l : model_->moe_layers()) {
    const auto& load = l->stats().step_load;
    double mx = 0, sum = 0;
    for (int64_t c : load.routed) {
      mx = std::max(mx, double(c));
      sum += double(c);
    }
    LayerLoad ll;
    ll.max_over_mean = sum > 0 ? mx / (sum / double(load.routed.size())) : 0;
    ll.dropped = load.assignments ? double(load.dropped) / double(load.assignments) : 0;
    r.layers.push_back(ll);
  }
  inject_nan(r.step, r.loss);
  // The verdict comes out of collectives only (the global grad norm and a flag reduced with
  // it), so every rank skips or stops at the same step.
  r.info = optim_->reduce_gradients(std::isfinite(r.loss.total()));
  if (!r.info.finite || !r.info.loss_finite) {
    if (cfg_.train.nonfinite == "stop") {
      char norm[32];
      std::snprintf(norm, sizeof norm, "%g", r.info.grad_norm);
      std::string what = !r.info.loss_finite ? "non-finite loss"
                                             : "non-finite gradient (global norm " + std::string(norm) + ")";
      throw NonFiniteStop(what + " at step " + std::to_string(r.step) +
                          "; train.nonfinite = \"stop\" ends the run on every rank; " +
                          (last_checkpoint_.empty() ? std::string("no checkpoint was saved")
                                                    : "the last checkpoint is " + last_checkpoint_ + " (step " +
                                                          std::to_string(saved_step_) + ")"));
    }
    r.skipped = true;
  } else {
    optim_->apply(r.step, r.info);
    model_->update_expert_bias();
  }
  ++step_;
  ctx_.backend->synchronize();
  r.seconds = now() - t0;
  return r;
}

void Trainer::inject_nan(int64_t step, models::LossParts& loss) {
  const config::DebugConfig& d = cfg_.debug;
  if (d.inject_nan_step != step || d.inject_nan_rank != ctx_.world->rank()) return;
  if (d.inject_nan_into == "loss") {
    loss.ce = std::nan("");
    return;
  }
  // One element of this rank's local dense gradient, before the reduction spreads it.
  Tensor& g = model_->params().grads(false);
  const double nd = std::nan("");
  const float nf = std::nanf("");
  copy_bytes(g.raw(), g.device(), g.dtype() == DType::F64 ? static_cast<const void*>(&nd) : &nf,
             Device::CPU, dtype_size(g.dtype()));
}

void inject_fault(const config::DebugConfig& d, int64_t step, int rank) {
  if (d.fault_step != step || d.fault_rank != rank) return;
  const std::string where = " at step " + std::to_string(step) + " on rank " + std::to_string(rank);
  if (d.fault == "throw") throw Error("injected fault (debug.fault = \"throw\")" + where);
  std::fprintf(stderr, "moe: debug: injected %s%s\n", d.fault.c_str(), where.c_str());
  std::fflush(stderr);
  if (d.fault == "exit") std::_Exit(kExitInternal);  // no MPI_Finalize, no unwinding
  for (;;) ::sleep(1000);                            // "hang": never returns
}

void Trainer::log(const StepRecord& r) {
  // Per-rank token counts (collective: every rank calls log on the same steps).
  const std::vector<LayerLoad>& loads = r.layers;
  double rmax = ctx_.world->max(r.rows), rsum = ctx_.world->sum(r.rows);
  if (ctx_.world->rank() != 0) return;
  const double tokens = double(cfg_.train.batch * cfg_.model.seq_len);
  metrics::Json j;
  j.begin_object();
  j.kv("step", r.step).kv("loss", r.loss.total()).kv("ce", r.loss.ce).kv("aux_loss", r.loss.aux);
  j.kv("z_loss", r.loss.z).kv("grad_norm", r.info.grad_norm).kv("skipped", r.skipped);
  if (r.val_loss) j.kv("val_loss", *r.val_loss);
  j.key("lr").begin_object();
  for (int g = 0; g < optim::kNumGroups; ++g) j.kv(std::string(optim::kGroupNames[g]), r.info.lr[g]);
  j.end_object();
  j.kv("tokens_per_s", tokens / r.seconds).kv("step_ms", 1e3 * r.seconds).kv("a2a_ms", 1e3 * r.a2a_seconds);
  // Model FLOP rate per rank (src/metrics/flops.h), and MFU when the device's peak is given.
  const double tflops = tokens * metrics::flops_per_token(cfg_) / r.seconds / ctx_.world->size() / 1e12;
  j.kv("model_tflops_per_rank", tflops);
  if (cfg_.train.peak_tflops > 0) j.kv("mfu", tflops / cfg_.train.peak_tflops);
  j.key("expert_load").begin_array();
  for (size_t l = 0; l < loads.size(); ++l) {
    j.begin_object().kv("layer", int64_t(l)).kv("max_over_mean", loads[l].max_over_mean);
    j.kv("dropped", loads[l].dropped).end_object();
  }
  j.end_array();
  const double mean = rsum / ctx_.world->size();
  j.key("rank_tokens").begin_object().kv("max", rmax).kv("mean", mean);
  j.kv("max_over_mean", mean > 0 ? rmax / mean : 0).end_object();
  // Warnings a reader of the loss must not miss: tokens dropped by capacity, windows reused.
  double worst_drop = 0;
  for (const LayerLoad& l : loads) worst_drop = std::max(worst_drop, l.dropped);
  const int64_t epoch = data::epoch_at_step(*source_, r.step, cfg_.train.batch);
  std::vector<std::string> warnings;
  char buf[160];
  if (worst_drop > kDropWarnFraction) {
    std::snprintf(buf, sizeof buf, "%.1f%% of token assignments dropped (moe.capacity_factor = %g)",
                  100 * worst_drop, cfg_.moe.capacity_factor);
    warnings.push_back(buf);
  }
  if (epoch > 0) {
    std::snprintf(buf, sizeof buf, "data windows reused (epoch %lld over %lld windows)", (long long)epoch + 1,
                  (long long)source_->windows().value_or(0));
    warnings.push_back(buf);
  }
  j.kv("dropped_max", worst_drop).kv("data_epoch", epoch + 1);
  j.key("warnings").begin_array();
  for (const std::string& w : warnings) j.value(w);
  j.end_array();
  j.end_object();
  if (metrics_.is_open()) {
    stop_if_launcher_gone();
    metrics_.append(j.str() + "\n");
  }
  if (opt_.progress) {
    const double elapsed = now() - started_;
    const int64_t done = r.step - first_logged_step_;
    const double eta = done > 0 ? elapsed / done * double(cfg_.train.steps - r.step) : 0;
    std::string warn;
    for (const std::string& w : warnings) warn += " | warning: " + w;
    char val[32] = "";
    if (r.val_loss) std::snprintf(val, sizeof val, " | val %.4f", *r.val_loss);
    std::printf("step %5lld/%lld | loss %.4f (ce %.4f)%s | grad %.3f | %s tok/s | a2a %.1f ms | eta %s%s%s\n",
                (long long)r.step, (long long)cfg_.train.steps, r.loss.total(), r.loss.ce, val,
                r.info.grad_norm, fmt_rate(tokens / r.seconds).c_str(), 1e3 * r.a2a_seconds,
                fmt_duration(eta).c_str(), r.skipped ? " | non-finite: skipped" : "", warn.c_str());
    std::fflush(stdout);
  }
}

void Trainer::train() {
  started_ = now();
  first_logged_step_ = step_;
  const int64_t every = cfg_.checkpoint.every;
  while (step_ < cfg_.train.steps) {
    if (const int sig = agreed_stop_signal()) stop_for_signal(sig);
    StepRecord r = step();
    if (evaluates_at(r.step)) r.val_loss = evaluate(*val_, cfg_.train.eval_batches);
    // Skipped and evaluation steps are always logged (the verdict is the same on every rank: log
    // is collective). A failed write (rank 0's metrics, any rank's shard) stops every rank with
    // one line.
    if (r.step % cfg_.train.log_every == 0 || r.step == cfg_.train.steps || r.step == 1 || r.skipped ||
        r.val_loss)
      comm::run_agreed(*ctx_.world, [&] { log(r); });
    if (opt_.checkpoints && every > 0 && r.step % every == 0) save_agreed();
    if (cfg_.debug.step_delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(cfg_.debug.step_delay_s));
  }
  if (opt_.checkpoints && step_ != saved_step_) save_agreed();
}

void Trainer::save_agreed() {
  try {
    save_checkpoint();
  } catch (const Error& e) {  // the same error on every rank (ckpt::save agrees on it)
    if (ctx_.world->rank() == 0) comm::print_error(e.what());
    throw comm::AgreedFailure(e.exit_code());
  }
}

int Trainer::agreed_stop_signal() {
  // One small reduction per step: every rank leaves the loop at the same boundary, so none is
  // left waiting in the next step's collectives.
  return int(ctx_.world->max(double(run::stop_signal())));
}

void Trainer::stop_for_signal(int sig) {
  if (cfg_.debug.stop_delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(cfg_.debug.stop_delay_s));
  // At step 0 nothing was trained: `--resume auto` starts the run, which is the same.
  if (opt_.checkpoints && step_ > 0 && step_ != saved_step_) save_agreed();
  const std::string where = step_ == 0 ? "before its first step (nothing to save)"
                            : last_checkpoint_.empty() || !opt_.checkpoints
                                ? "at step " + std::to_string(step_) + " (checkpoints are off)"
                                : "at step " + std::to_string(step_) + " of " + std::to_string(cfg_.train.steps) +
                                      ": checkpoint " + last_checkpoint_ + " written";
  char after[64];
  std::snprintf(after, sizeof after, " (%.1f s after the signal)", run::seconds_since_stop_signal());
  throw SignalStop("stopped by " + run::signal_name(sig) + " " + where + after +
                   "; continue with --resume auto (exit " + std::to_string(kExitStopped) + ")");
}

ckpt::TrainState Trainer::checkpoint_state() {
  ckpt::TrainState s;
  s.config = &cfg_;
  s.table = &table_;
  s.params = &model_->params();
  s.optimizer = optim_.get();
  for (models::MoeLayer* m : model_->moe_layers()) s.expert_bias.push_back(m->bias());
  s.step = step_;
  s.optimizer_steps = optim_->steps_taken();
  s.run_id = run_id_;
  s.segment = segment_;
  return s;
}

std::string Trainer::save_checkpoint() {
  const double t0 = now();
  std::string dir = ckpt::save(checkpoint_state(), ctx_, cfg_.run.dir, cfg_.checkpoint.keep);
  saved_step_ = step_;
  last_checkpoint_ = dir;
  if (opt_.progress && ctx_.world->rank() == 0) {
    std::printf("checkpoint: %s (%.2f s)\n", dir.c_str(), now() - t0);
    std::fflush(stdout);
  }
  return dir;
}

ckpt::LoadInfo Trainer::load_checkpoint(const std::string& path, bool optimizer_state) {
  ckpt::TrainState s = checkpoint_state();
  if (!optimizer_state) s.optimizer = nullptr;
  ckpt::LoadInfo info = ckpt::load(path, s, ctx_);
  step_ = info.step;
  saved_step_ = info.step;
  last_checkpoint_ = info.dir;
  return info;
}

bool Trainer::evaluates_at(int64_t s) const {
  if (!val_) return false;
  const int64_t every = cfg_.train.eval_every;
  return s == cfg_.train.steps || (every > 0 && s % every == 0);
}

double Trainer::evaluate(const data::TokenSource& src, int64_t batches) {
  double total = 0;
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t m = 0; m < micro_steps_; ++m) {
      data::LocalBatch lb;
      data::load_batch(src, b, cfg_.train.batch, cfg_.model.seq_len, ctx_.world->rank(),
                       ctx_.world->size(), lb, micro_, m);
      models::Batch batch;
      upload(lb, batch);
      total += model_->run(batch, /*backward=*/false).ce;  // this micro-batch's share
    }
  return batches ? total / double(batches) : 0.0;
}

}  // namespace moe::train
