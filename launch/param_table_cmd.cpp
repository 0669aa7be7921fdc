// moe param-table: prints the resolved parameterization table of a config (text, csv, json),
// or what changes between two configs (--diff), e.g. the base shape against an 8x model.
#include <cstdio>

#include "launch/commands.h"
#include "src/optim/parameterization.h"

namespace moe::launch {
namespace {

struct TableArgs {
  std::string config, diff, format = "text";
  std::vector<std::string> sets, diff_sets;
};

int run_table(const TableArgs& a) {
  config::Config c = load_config_agreed(a.config, a.sets, 0);
  optim::ParamTable t = optim::make_param_table(c);
  std::string out;
  if (!a.diff.empty() || !a.diff_sets.empty()) {
    // B: another file, or the same config with more overrides
    std::vector<std::string> sets_b = a.diff.empty() ? a.sets : std::vector<std::string>{};
    sets_b.insert(sets_b.end(), a.diff_sets.begin(), a.diff_sets.end());
    config::Config b = load_config_agreed(a.diff.empty() ? a.config : a.diff, sets_b, 0);
    out = optim::format_diff(t, optim::make_param_table(b));
  } else {
    out = optim::format_table(t, a.format);
  }
  if (world().rank() == 0) std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

void add_param_table(CLI::App& app, std::vector<Command>& cmds) {
  auto a = std::make_shared<TableArgs>();
  CLI::App* sub = app.add_subcommand("param-table", "print the parameterization table (init, multipliers, learning rates)");
  sub->add_option("--config", a->config, "TOML config (default: the built-in default)");
  sub->add_option("--set", a->sets, "override a key (repeatable)");
  sub->add_option("--format", a->format, "text | csv | json")->check(CLI::IsMember({"text", "csv", "json"}));
  sub->add_option("--diff", a->diff, "second config: print what changes from --config to it");
  sub->add_option("--diff-set", a->diff_sets, "overrides for the second config (with no --diff: applied on top of --config)");
  cmds.push_back({sub, [a] { return run_table(*a); }});
}

}  // namespace moe::launch
