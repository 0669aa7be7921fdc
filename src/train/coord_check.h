// Coordinate checks (parameterization.md, "How the project proves it"): train each scale of one
// axis a few steps on a fixed batch and record, per site, the RMS of the activation and of its
// change since init; fit the log-log slope of each against the scale. Under a scale-stable
// parameterization the slopes are ~0; under SP the updates grow.
#pragma once
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "src/config/config.h"
#include "src/ops/backend.h"

namespace moe::train {

struct CoordSpec {
  config::Config base;                // scale 1
  // N | Ne | M (K scaled with it) | K | L, or a regime: I (N, Ne), II (N, M, K), III (all four)
  std::string axis = "N";
  std::vector<double> scales = {1, 2, 4, 8};
  std::vector<std::string> presets = {"sp", "mup", "mssp"};
  std::string optimizer = "adamw";    // adamw | sgd
  int steps = 10;
  int seeds = 4;
};

struct CoordRecord {
  std::string preset;
  double scale;
  int step;
  std::string site;
  double rms, delta;  // mean over layers and seeds
};

struct CoordSlope {
  std::string preset, site;
  double rms_slope = 0, delta_slope = 0;
  bool rms_exempt = false;  // documented to shrink with scale at init (logits, router logits)
};

struct CoordResult {
  std::vector<CoordRecord> records;
  std::vector<CoordSlope> slopes;  // fitted at the last step
};

// The config at `scale` along `axis` (widths keep the head size by scaling the heads; M keeps K/M).
config::Config scale_config(const config::Config& base, const std::string& axis, double scale);
// Runs the check on a single-rank communicator.
CoordResult coord_check(const CoordSpec& spec, comm::Communicator& self, ops::Backend& backend);
// Least-squares slope of log(y) against log(x).
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);
std::string coord_csv(const CoordResult& r);
std::string coord_summary(const CoordResult& r, double tolerance);

}  // namespace moe::train
