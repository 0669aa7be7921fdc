// The MSSP paper's coordinate-check observables (official code `vankadara-lab/mssp-moe`,
// mlp-moe-experiments/moe_logging.py), measured on one fixed batch at every step:
//   activation RMS and the RMS of its change since init, per probe site;
//   for each linear map y = m x W^T with input x: the effective update (W_t - W_0) x_t and the
//   propagating update W_0 (x_t - x_0), as RMS over every (token, output) coordinate, m included;
//   gradient RMS per parameter group (over every element of the group's tensors in the layer);
//   the RMS of d loss / d logits (the output, and each MoE layer's router).
// As in the paper's code, every expert is applied to every token of the batch (not only to the
// tokens routed to it), and an expert matrix's value is the RMS over all experts' coordinates.
// The products run on the CPU in f64 from copies of the weights and of the recorded inputs.
#pragma once
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/transformer.h"
#include "src/ops/backend.h"

namespace moe::train {

// One (site, layer) at one step; NaN where a quantity does not apply to the site.
struct Observables {
  double rms = NAN;    // RMS of the activation (of m x_t W_t^T for a linear site)
  double delta = NAN;  // RMS of its change since step 0
  double eff = NAN;    // effective update   RMS(m x_t (W_t - W_0)^T)
  double prop = NAN;   // propagating update RMS(m (x_t - x_0) W_0^T)
  double grad = NAN;   // RMS of the gradient (of the parameter group, or of a site's logits)
};

using SiteKey = std::pair<std::string, int>;  // (site, layer); layer -1 outside the blocks
using ObsMap = std::map<SiteKey, Observables>;

// The linear maps observed, by parameter group, and the probe site that records their input.
// A new linear map is one line here plus the `probe->record` of its input in the model; a group
// with no parameter in the model is skipped. Linear sites are named "W.<group>".
struct LinearSite {
  const char* group;
  const char* input;  // probe site; "" for expert_down, whose input (the expert's hidden
                      // activation on every token) is computed here from moe_in and expert_up
};
extern const std::vector<LinearSite> kLinearSites;

// Mean squares over (tokens, outputs) of one linear map observed at init and now:
// w0, wt (out, in), x0, xt (n, in), all f64 on the CPU.
struct LinearMs {
  double y = 0, dy = 0, eff = 0, prop = 0;  // of y_t, y_t - y_0, effective, propagating
};
LinearMs linear_ms(ops::Backend& cpu, const Tensor& w0, const Tensor& wt, const Tensor& x0,
                   const Tensor& xt, double mult);

// A Probe that keeps every recorded site (f64 copies) and, on observe(), computes every
// observable of the pass just run. The first observe() fixes the init (step 0).
class CoordObserver final : public models::Probe {
 public:
  // linear_updates = false skips the effective and propagating updates (the products).
  explicit CoordObserver(models::Transformer& model, bool linear_updates = true);
  ~CoordObserver() override;
  // Sites ending in "_grad" carry d loss / d (site) from the backward pass.
  void record(const std::string& site, int layer, const Tensor& t) override;
  // After model.run(batch, true), before the optimizer step.
  ObsMap observe();

 private:
  void observe_linear(const optim::Param& p, const LinearSite& s, int layer, Observables& o);
  Tensor expert_hidden(const std::string& layer_prefix, int64_t e, const Tensor& x, bool at_init);

  models::Transformer& model_;
  std::unique_ptr<ops::Backend> cpu_;
  bool linear_updates_, have_init_ = false;
  std::map<SiteKey, Tensor> now_, init_;  // recorded activations, f64 (n, cols)
  std::map<SiteKey, double> grads_;       // RMS of the recorded "<site>_grad" tensors
  std::map<std::string, Tensor> w0_, wt_;  // every parameter at init and now, f64, by name
};

}  // namespace moe::train
