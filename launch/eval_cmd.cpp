// moe eval: the mean cross-entropy of a checkpoint's weights over N global batches of a data
// source. The config comes from the checkpoint's manifest; --set overrides it (data.kind,
// data.path, train.batch, routing-only keys such as moe.capacity_factor). What was evaluated is
// named as a split: "val" for held-out data (the synthetic language's disjoint stream, the
// windows of data.val_fraction, the files of data.val_path), "train" for the very files the
// checkpoint was trained on when they have no held-out split, "given" for other files. The
// --batches x train.batch windows are spread evenly over the split (src/data/held_out.h), as
// in training; asking for more than it holds is an error. Runs at any world size: the EP size
// is the manifest's when it divides the world, else gcd(world, M).
#include <cstdio>
#include <numeric>

#include "comm/agree.h"
#include "comm/parallel_context.h"
#include "launch/commands.h"
#include "src/ckpt/checkpoint.h"
#include "src/data/held_out.h"
#include "src/metrics/json.h"
#include "src/train/trainer.h"

namespace moe::launch {
namespace {

struct EvalArgs {
  std::string checkpoint, out;
  std::vector<std::string> sets;
  int64_t batches = 10;
};

bool sets_key(const std::vector<std::string>& sets, const std::string& key) {
  for (const std::string& s : sets)
    if (s.rfind(key + "=", 0) == 0) return true;
  return false;
}

int run_eval(const EvalArgs& a) {
  comm::Communicator& w = world();
  check_output_agreed(a.out);  // before the checkpoint is read
  std::string dir, trained_config;
  config::Config cfg;
  comm::run_agreed(w, [&] {
    if (a.batches < 1) throw InputError("--batches must be >= 1", true);
    ckpt::Manifest m = ckpt::peek_manifest(a.checkpoint, dir);
    trained_config = m.config;
    std::vector<std::string> sets = a.sets;
    if (!sets_key(sets, "parallel.ep")) {
      int64_t ep = m.layout.ep;
      if (w.size() % ep != 0) ep = std::gcd(int64_t(w.size()), m.experts);
      sets.insert(sets.begin(), "parallel.ep=" + std::to_string(ep));
    }
    cfg = config::parse_config(m.config, dir + "/manifest.toml", sets, w.size());
    // The evaluation reads its own held-out source below (--batches x train.batch sequences):
    // the Trainer's validation, and its check of train.eval_batches against the split, is not
    // used and must not refuse a train.batch that --batches allows.
    cfg.train.eval_batches = 0;
  });
  set_collective_timeout(cfg);
  std::unique_ptr<ops::Backend> backend;
  comm::run_agreed(w, [&] { backend = make_backend(cfg); });
  auto ctx = comm::make_parallel_context(make_model_world(cfg, *backend), int(cfg.parallel.ep), backend.get());
  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<data::TokenSource> src;
  comm::run_agreed(w, [&] {
    trainer =
        std::make_unique<train::Trainer>(cfg, ctx, train::TrainerOptions{false, false, false});
    src = data::make_eval_source(cfg.data, cfg.model.vocab, cfg.model.seq_len, a.batches, cfg.train.batch,
                                 "--batches");
  });
  // The training config's data, from the manifest, to tell held-out data from training data.
  std::string split = "val";
  comm::run_agreed(w, [&] {
    if (cfg.data.kind == "synthetic") return;
    if (!data::has_held_out(cfg.data)) {
      const config::Config trained =
          config::parse_config(trained_config, dir + "/manifest.toml", {}, 0);
      split = trained.data.kind == cfg.data.kind &&
                      config::data_file(trained.data, trained.data.path) == config::data_file(cfg.data, cfg.data.path)
                  ? "train"
                  : "given";
    }
  });
  int64_t step = 0;
  comm::run_agreed(w,
                   [&] { step = trainer->load_checkpoint(dir, /*optimizer_state=*/false).step; });
  const double loss = trainer->evaluate(*src, a.batches);
  const int64_t tokens = a.batches * cfg.train.batch * cfg.model.seq_len;
  if (w.rank() == 0) {
    std::printf("moe eval: %s (step %lld) | data: %s, split %s | %lld batches, %lld tokens | loss %.6f\n",
                dir.c_str(), (long long)step, src->describe().c_str(), split.c_str(), (long long)a.batches,
                (long long)tokens, loss);
    std::fflush(stdout);
  }
  metrics::Json j;
  j.begin_object().kv("checkpoint", dir).kv("step", step);
  j.key("data").begin_object().kv("kind", cfg.data.kind).kv("path", cfg.data.path).kv("split", split);
  j.kv("describe", src->describe()).end_object();
  j.kv("batches", a.batches).kv("tokens", tokens).kv("loss", loss).kv("world", int64_t(w.size()));
  j.end_object();
  write_output_agreed(a.out, j.str() + "\n");
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, std::vector<Command>& cmds) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "mean cross-entropy of a checkpoint on held-out data");
  sub->add_option("--checkpoint", args->checkpoint,
                  "checkpoint directory, or a run directory (its latest)")
      ->required();
  sub->add_option("--set", args->sets,
                  "override a key of the checkpoint's config: --set data.path=val.bin");
  sub->add_option("--batches", args->batches,
                  "global batches of train.batch held-out windows, spread evenly over the split (default 10)");
  sub->add_option("--out", args->out,
                  "write the result as JSON to this file (a regular file or a new name)");
  cmds.push_back({sub, [args] { return run_eval(*args); }});
}

}  // namespace moe::launch
