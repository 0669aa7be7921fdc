// moe train: the main job.
#include <chrono>
#include <cstdio>

#include "comm/agree.h"
#include "comm/parallel_context.h"
#include "launch/commands.h"
#include "src/core/launcher.h"
#include "src/data/synthetic.h"
#include "src/train/memory_estimate.h"
#include "src/run/run_lock.h"
#include "src/run/start.h"
#include "src/run/stop_signals.h"
#include "src/train/trainer.h"

namespace moe::launch {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string resume;
  bool overwrite = false;
  std::vector<std::string> allow_changes;
};

int run_train(const TrainArgs& a) {
  comm::Communicator& w = world();
  config::Config cfg = load_config_agreed(a.config, a.sets, w.size());
  // main() caught every stop signal before MPI started; from here, run.stop_signals.
  std::vector<int> stop_signals;
  for (const std::string& s : cfg.run.stop_signals) stop_signals.push_back(run::signal_number(s));
  run::catch_stop_signals(stop_signals);
  run::set_stop_timeout(cfg.run.stop_timeout_s, w.rank());
  watch_launcher(w.rank());
  set_collective_timeout(cfg);
  // One job per run directory, held until this function returns (or the process dies). Rank 0
  // decides how this segment starts (src/run/start.h) and tells the others.
  std::unique_ptr<run::RunDirLock> lock;
  run::StartPlan plan;
  comm::run_agreed(w, [&] {
    if (a.overwrite && !a.resume.empty())
      throw InputError("--overwrite and --resume together: --overwrite removes the run's checkpoints", true);
    if (w.rank() != 0) return;
    lock = std::make_unique<run::RunDirLock>(cfg.run.dir);
    const std::set<std::string> allow(a.allow_changes.begin(), a.allow_changes.end());
    plan = run::plan_start(cfg.run.dir, cfg, {a.resume, a.overwrite, allow});
  });
  const std::string shared = comm::broadcast_text(w, w.rank() == 0 ? run::plan_to_text(plan) : "", 0);
  if (w.rank() != 0) plan = run::plan_from_text(shared);
  if (plan.kind == run::StartKind::Complete) {
    if (w.rank() == 0) std::printf("moe train: %s\n", plan.note.c_str());
    return 0;
  }
  w.set_heartbeat_dir(cfg.run.dir);  // a hang names the rank that stopped (comm/watchdog.h)
  std::unique_ptr<ops::Backend> backend;
  comm::run_agreed(w, [&] { backend = make_backend(cfg); });
  // Before anything large is allocated: a config that cannot fit stops every rank (exit 2).
  const train::MemoryEstimate mem = train::estimate_memory(cfg, w.size());
  const int local_ranks = ranks_on_node();
  train::MemoryLimit limit;
  comm::run_agreed(w, [&] {
    limit = train::memory_limit(cfg, local_ranks);
    train::check_memory(mem, limit);
  });
  auto ctx = comm::make_parallel_context(make_model_world(cfg, *backend), int(cfg.parallel.ep), backend.get());
  std::unique_ptr<train::Trainer> trainer;
  train::TrainerOptions topt;
  topt.write_run_dir = false;  // below, once the start is certain
  comm::run_agreed(w, [&] { trainer = std::make_unique<train::Trainer>(cfg, ctx, topt); });
  double load_s = 0;
  if (!plan.checkpoint.empty()) {  // any rank's error (bad or mismatched checkpoint) stops all with one line
    const auto t0 = std::chrono::steady_clock::now();
    comm::run_agreed(w, [&] {
      const std::string loaded = trainer->load_checkpoint(plan.checkpoint).dir;
      const int64_t step = trainer->steps_done();
      std::string origin = a.config.empty() ? "<built-in default config>" : a.config;
      for (const std::string& s : a.sets)
        if (s.rfind("train.steps=", 0) == 0) origin = "--set " + s;
      if (cfg.train.steps <= step)  // the same on every rank: the step is the checkpoint's
        throw InputError(origin + ": train.steps = " + std::to_string(cfg.train.steps) + " is at or below the step of " +
                             loaded + " (" + std::to_string(step) +
                             "): nothing to train; set train.steps above it to continue",
                         true);
    });
    load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // Only now does the directory change: a refused or failed start has lost nothing.
  comm::run_agreed(w, [&] {
    if (w.rank() != 0) return;
    run::begin_segment(cfg.run.dir, plan, cfg);
    trainer->open_run_dir();
  });
  trainer->set_run(plan.identity.id, plan.segment);
  if (w.rank() == 0) {
    const auto& src = trainer->source();
    std::printf("moe train: %d rank(s), ep=%lld%s, dp=%d, device %s, preset %s\n", w.size(),
                (long long)cfg.parallel.ep,
                cfg.parallel.ep_auto ? " (auto: the largest divisor of moe.experts that divides the world size)" : "",
                ctx.dp_size, backend->name(), cfg.parameterization.preset.c_str());
    std::printf("model: V=%lld T=%lld N=%lld H=%lld L=%lld | M=%lld K=%lld Ne=%lld | %lld params (%lld dense, %lld expert per rank)\n",
                (long long)cfg.model.vocab, (long long)cfg.model.seq_len, (long long)cfg.model.width,
                (long long)cfg.model.heads, (long long)cfg.model.depth, (long long)cfg.moe.experts,
                (long long)cfg.moe.top_k, (long long)cfg.moe.expert_width,
                (long long)(trainer->model().params().count(false) + trainer->model().params().count(true) * ctx.ep_size),
                (long long)trainer->model().params().count(false), (long long)trainer->model().params().count(true));
    std::printf("data: %s\n", src.describe().c_str());
    if (const int64_t epochs = data::epoch_at_step(src, cfg.train.steps, cfg.train.batch); epochs > 0)
      std::printf("data: warning: %lld steps x batch %lld = %lld sequences pass over the %lld windows %lld times "
                  "(windows are reused)\n",
                  (long long)cfg.train.steps, (long long)cfg.train.batch,
                  (long long)(cfg.train.steps * cfg.train.batch), (long long)src.windows().value_or(0),
                  (long long)epochs + 1);
    if (auto h = src.entropy()) {
      const auto* syn = dynamic_cast<const data::SyntheticLanguage*>(&src);
      std::printf("loss floor (entropy of the language): %.4f +- %.4f nats/token\n", *h,
                  syn ? syn->entropy_stderr() : 0.0);
    }
    std::printf("memory per rank: estimate %s; limit %s\n", mem.describe().c_str(),
                limit.bytes > 0 ? train::format_bytes(limit.bytes).c_str() : "unknown");
    std::printf("run dir: %s (run %s)\n", cfg.run.dir.c_str(), plan.identity.id.c_str());
    if (!plan.note.empty()) std::printf("%s\n", plan.note.c_str());
    if (!plan.checkpoint.empty()) std::printf("checkpoint loaded in %.2f s\n", load_s);
    for (const run::ConfigChange& c : plan.changes)
      std::printf("config change since the checkpoint: %s = %s -> %s\n", c.key.c_str(), c.before.c_str(),
                  c.after.c_str());
    std::fflush(stdout);
  }
  try {
    trainer->train();
  } catch (const train::NonFiniteStop& e) {
    // Every rank is here at the same step (the verdict came from collectives): one line, the
    // same exit code everywhere, and no MPI_Abort.
    if (w.rank() == 0) comm::print_error(e.what());
    throw comm::AgreedFailure(e.exit_code());
  } catch (const train::SignalStop& e) {
    // Every rank stops at the same boundary with the checkpoint written; the bound on the stop
    // is lifted before MPI's finalize.
    run::stop_finished();
    if (w.rank() == 0) {
      std::fprintf(stderr, "moe: %s\n", e.what());
      std::fflush(stderr);
    }
    throw comm::AgreedFailure(e.exit_code());
  }
  return 0;
}

}  // namespace

void add_train(CLI::App& app, std::vector<Command>& cmds) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand("train", "train a model (run under mpirun or srun for several ranks)");
  sub->add_option("--config", args->config, "TOML config (default: the built-in configs/default.toml)");
  sub->add_option("--set", args->sets, "override a key: --set optim.lr=1e-3 (repeatable)");
  sub->add_option("--resume", args->resume,
                  "auto (this run.dir's latest checkpoint, or a fresh start when it has none), a checkpoint "
                  "directory, or a run directory (its latest); another run's checkpoint forks it into an empty run.dir");
  sub->add_option("--allow-change", args->allow_changes,
                  "a config key that may differ from the checkpoint's on resume (repeatable; e.g. train.steps)");
  sub->add_flag("--overwrite", args->overwrite,
                "start over in a run.dir that holds an earlier run (removes its metrics and checkpoints)");
  cmds.push_back({sub, [args] { return run_train(*args); }});
}

}  // namespace moe::launch
