// moe export: a checkpoint (saved at any layout) -> one safetensors file with every weight, the
// experts stacked in global order, and the expert biases (names and shapes: docs/model.md).
// Runs on rank 0; other ranks of an mpirun only wait for it.
#include <cstdio>

#include "comm/agree.h"
#include "launch/commands.h"
#include "src/ckpt/export.h"

namespace moe::launch {
namespace {

struct ExportArgs {
  std::string checkpoint, out;
};

int run_export(const ExportArgs& a) {
  comm::Communicator& w = world();
  auto one = w.split(w.rank() == 0 ? 0 : 1, w.rank());
  auto backend = ops::make_cpu_backend();
  comm::run_agreed(w, [&] {
    if (w.rank() != 0) return;
    ckpt::ExportInfo info = ckpt::export_safetensors(a.checkpoint, a.out, std::move(one), *backend);
    std::printf("moe export: %s (step %lld) -> %s: %lld tensors, %.1f MB\n", info.dir.c_str(),
                (long long)info.step, a.out.c_str(), (long long)info.tensors,
                double(info.bytes) / 1e6);
    std::fflush(stdout);
  });
  return 0;
}

}  // namespace

void add_export(CLI::App& app, std::vector<Command>& cmds) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* sub =
      app.add_subcommand("export", "write a checkpoint's weights as one .safetensors file");
  sub->add_option("--checkpoint", args->checkpoint,
                  "checkpoint directory, or a run directory (its latest)")
      ->required();
  sub->add_option("--out", args->out,
                  "output file, e.g. model.safetensors (a regular file or a new name)")
      ->required();
  cmds.push_back({sub, [args] { return run_export(*args); }});
}

}  // namespace moe::launch
