// moe coord-check: coordinate checks of the parameterization along one axis, for several
// presets: CSV of the MSSP paper's observables per site, layer, scale and step, a PNG per
// preset, and the fitted log-log slopes (CSV and table).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "comm/agree.h"
#include "launch/commands.h"
#include "launch/plots.h"
#include "src/core/output_file.h"
#include "src/train/coord_check.h"

namespace moe::launch {
namespace {

struct CoordArgs {
  std::string config, axis = "N", scales = "1,2,4,8", presets = "sp,mup,mssp", optimizer = "adam", out;
  std::vector<std::string> sets;
  int steps = 10, seeds = 4;
  double tolerance = 0.1;
};

template <class T>
std::vector<T> split_list(const std::string& s, T (*conv)(const std::string&)) {
  std::vector<T> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(conv(item));
  return out;
}

int run_coord(const CoordArgs& a) {
  if (world().size() != 1) throw InputError("coord-check runs on one rank (run it without mpirun)", true);
  train::CoordSpec spec;
  std::string cfg_path = a.config.empty() ? std::string(MOE_SOURCE_DIR) + "/configs/coord_check.toml" : a.config;
  spec.base = load_config_agreed(cfg_path, a.sets, 0);
  spec.axis = a.axis;
  spec.steps = a.steps;
  spec.seeds = a.seeds;
  spec.optimizer = a.optimizer == "sgd" ? "sgd" : "adamw";
  try {
    spec.scales = split_list<double>(a.scales, [](const std::string& s) { return std::stod(s); });
  } catch (const std::exception&) {
    throw InputError("--scales " + a.scales + ": expected numbers like 1,2,4,8", true);
  }
  spec.presets = split_list<std::string>(a.presets, [](const std::string& s) { return s; });
  for (const auto& p : spec.presets)
    if (p != "sp" && p != "mup" && p != "mssp" && p != "jiang") throw InputError("--presets: unknown preset " + p, true);
  const std::string out = a.out.empty() ? spec.base.run.dir : a.out;
  const std::string csv = out + "/coord_check_" + a.axis + ".csv";
  const std::string slopes = out + "/coord_slopes_" + a.axis + ".csv";
  const std::string summary_path = out + "/summary_" + a.axis + ".txt";
  auto png = [&](const std::string& preset) { return out + "/coord_check_" + a.axis + "_" + preset + ".png"; };
  // Before the checks run (minutes): an output path that cannot be written fails at once.
  comm::run_agreed(world(), [&] {
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) throw InputError(out + ": cannot create the output directory: " + ec.message());
    for (const std::string& p : {csv, slopes, summary_path}) check_output_path(p);
    for (const std::string& p : spec.presets) check_output_path(png(p));
  });
  auto backend = ops::make_cpu_backend();
  train::CoordResult r = train::coord_check(spec, world(), *backend);
  write_output_agreed(csv, train::coord_csv(r));
  write_output_agreed(slopes, train::coord_slopes_csv(r));
  char head[300];
  std::snprintf(head, sizeof head,
                "coord check: axis %s, scales %s, %d steps (%s), %d seed(s); slopes of log value against log "
                "scale at the last step, mean over layers\n",
                a.axis.c_str(), a.scales.c_str(), a.steps, spec.optimizer.c_str(), a.seeds);
  const std::string summary = head + train::coord_summary(r, a.tolerance);
  write_output_agreed(summary_path, summary);
  std::fputs(summary.c_str(), stdout);
  std::printf("csv: %s, %s\n", csv.c_str(), slopes.c_str());
  for (const std::string& p : spec.presets) {
    std::string why = render_plot(kCoordPlotScript, {csv, p, png(p), a.axis});
    std::printf("plot: %s\n", why.empty() ? png(p).c_str() : why.c_str());
  }
  return 0;
}

}  // namespace

void add_coord_check(CLI::App& app, std::vector<Command>& cmds) {
  auto a = std::make_shared<CoordArgs>();
  CLI::App* sub = app.add_subcommand("coord-check", "coordinate check of the parameterization along one axis");
  sub->add_option("--config", a->config, "base config at scale 1 (default: configs/coord_check.toml)");
  sub->add_option("--set", a->sets, "override a key of the base config (repeatable)");
  sub->add_option("--axis", a->axis, "N | Ne | M (K/M fixed) | K | L, or a regime I | II | III")
      ->check(CLI::IsMember({"N", "Ne", "M", "K", "L", "I", "II", "III"}));
  sub->add_option("--scales", a->scales, "comma-separated scale factors");
  sub->add_option("--steps", a->steps, "training steps on the fixed batch (0: the initial forward pass only)")->check(CLI::NonNegativeNumber);
  sub->add_option("--seeds", a->seeds, "initializations averaged")->check(CLI::PositiveNumber);
  sub->add_option("--presets", a->presets, "comma-separated: sp,mup,mssp,jiang");
  sub->add_option("--optimizer", a->optimizer, "adam | sgd")->check(CLI::IsMember({"adam", "adamw", "sgd"}));
  sub->add_option("--out", a->out, "output directory (default: the config's run.dir)");
  sub->add_option("--tolerance", a->tolerance, "|slope| below which a site counts as stable");
  cmds.push_back({sub, [a] { return run_coord(*a); }});
}

}  // namespace moe::launch
