// Coordinate checks (parameterization.md, "How the project proves it"): train each scale of one
// axis a few steps on a fixed batch and record, per site and layer, the MSSP paper's observables
// (coord_observables.h: activation RMS and its change since init, effective and propagating
// updates of every linear map, gradient RMS per group, logit gradients); fit the log-log slope
// of each against the scale. Under a scale-stable parameterization the slopes are ~0 (gradients
// excepted: an entry's gradient shrinks with the fan); under SP the updates grow.
#pragma once
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "src/config/config.h"
#include "src/ops/backend.h"
#include "src/train/coord_observables.h"

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
  bool linear_updates = true;  // effective and propagating updates (f64 products on the CPU)
};

constexpr int kMeanLayer = -2;  // a record's layer: the mean over the blocks that have the site

struct CoordRecord {
  std::string preset;
  double scale;
  int step;
  std::string site;
  int layer;      // the block; -1 outside the blocks; kMeanLayer
  Observables v;  // mean over seeds
};

struct CoordSlope {
  std::string preset, site;
  Observables slope;        // of the mean over layers at the last step; NaN where not applicable
                            // or where the value is zero at some scale
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
// Least-squares slope of log(y) against log(x); NaN when some y is NaN or not positive.
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);
// Every record: preset,scale,step,site,layer,rms,delta_rms,eff_update,prop_update,grad_rms.
std::string coord_csv(const CoordResult& r);
// Every slope: preset,site and the five observables' slopes.
std::string coord_slopes_csv(const CoordResult& r);
// The slopes as a table, with a verdict per site: stable when every update slope (change,
// effective, propagating) and the RMS slope (unless exempt) is below `tolerance` in size.
std::string coord_summary(const CoordResult& r, double tolerance);

}  // namespace moe::train
