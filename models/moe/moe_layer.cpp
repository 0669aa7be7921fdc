// MoE layer forward/backward and the global statistics behind the auxiliary losses.
#include "models/moe/moe_layer.h"

#include <cmath>

#include "models/linear.h"

namespace moe::models {
namespace {

// Host values into dst (f32 or f64, M elements on the device) without a host wait.
void upload_values(ops::Backend& be, const std::vector<double>& v, Tensor& dst) {
  if (dst.dtype() == DType::F64) {
    be.upload(dst.raw(), v.data(), v.size() * sizeof(double));
  } else {
    std::vector<float> f(v.begin(), v.end());
    be.upload(dst.raw(), f.data(), f.size() * sizeof(float));
  }
}

}  // namespace

MoeLayer::MoeLayer(comm::ParallelContext& ctx, const MoeOptions& opt, std::unique_ptr<Router> router,
                   ExpertParams experts, Tensor bias)
    : ctx_(ctx),
      opt_(opt),
      router_(std::move(router)),
      dispatcher_(*ctx.ep, opt.experts / ctx.ep_size),
      experts_(experts),
      bias_(std::move(bias)) {}

void MoeLayer::forward(const Tensor& x, Tensor& out, Probe* probe, int layer) {
  ops::Backend& be = *ctx_.backend;
  const int64_t n = x.dim(0), M = opt_.experts;
  const int K = opt_.top_k;
  x_ = x;
  probe_ = probe;
  layer_ = layer;
  router_->forward(be, x, bias_, routing_);
  if (probe) {
    probe->record("router_logits", layer, routing_.logits);
    probe->record("gates", layer, routing_.gates);
  }
  idx_host_.resize(n * K);
  copy_bytes(idx_host_.data(), Device::CPU, routing_.idx.raw(), routing_.idx.device(), n * K * 4);
  if (opt_.force_expert >= 0)  // a token surge for the tests: only the exchange sees it
    for (int64_t t = 0; t < n; ++t)
      for (int k = 0; k < K; ++k) idx_host_[t * K + k] = int32_t((opt_.force_expert + k) % M);
  int64_t capacity = expert_capacity(opt_.capacity_factor, opt_.global_tokens, K, M);
  stats_.load = decide_kept(idx_host_.data(), n, K, M, capacity, *ctx_.world, kept_);
  GlobalLoad& sl = stats_.step_load;
  sl.routed.resize(size_t(M), 0);
  for (int64_t i = 0; i < M; ++i) sl.routed[size_t(i)] += stats_.load.routed[size_t(i)];
  sl.dropped += stats_.load.dropped;
  sl.assignments += stats_.load.assignments;
  dispatcher_.reset_timer();
  dispatcher_.plan(idx_host_.data(), kept_.data(), n, K);
  // The router read x in the master dtype (fp32 routing); the rows travel and meet the experts
  // in the experts' compute dtype (bf16 under mixed precision: half the exchanged bytes).
  const DType act = experts_.compute_dtype();
  const Tensor xa = as_dtype(be, x, act, xa_);
  dispatcher_.dispatch(be, xa, x_recv_);
  const int64_t m = x_recv_.dim(0), N = x.dim(1);
  y_recv_ = reuse(y_recv_, {m, N}, act, x.device());
  experts_.forward(be, x_recv_, dispatcher_.segments(), y_recv_);
  if (probe) {  // one expert's output before aggregation: this rank's first local expert, on every token
    Tensor y0 = Tensor::empty({n, N}, act, x.device());
    experts_.apply_one(be, xa, 0, y0);
    probe->record("expert_out", layer, y0);
  }
  dispatcher_.combine(be, y_recv_, routing_.w, opt_.c_agg, out);
  stats_.recv_rows = m;

  // The aux-loss gradient's coefficients need only the global counts (on the host already):
  // uploaded without a wait. The loss values wait for finish_losses (no sync in the layer).
  if (opt_.aux_loss > 0) {
    coef_host_.assign(size_t(M), 0.0);
    for (int64_t i = 0; i < M; ++i) coef_host_[size_t(i)] = aux_coefficient(i);
    aux_coef_ = reuse(aux_coef_, {M}, x.dtype(), x.device());
    upload_values(be, coef_host_, aux_coef_);
  }
  if (probe) probe->record("moe_out", layer, out);
}

// Switch: aux = M sum_i f_i P_i, f_i the fraction of assignments to expert i and P_i the mean
// probability (P_i = st[i] / n). With aux_selected (the MSSP paper's code) f_i counts per token
// (sums to K) and P_i averages the scaled gates c_agg g of the chosen experts. Returns
// d aux / d st[i], so that aux = sum_i aux_coefficient(i) st[i].
double MoeLayer::aux_coefficient(int64_t i) const {
  const double ng = double(opt_.global_tokens);
  const bool selected = router_->options().aux_selected;
  const double f = double(stats_.load.routed[size_t(i)]) / ((selected ? 1.0 : double(opt_.top_k)) * ng);
  return opt_.loss_scale * opt_.aux_loss * double(opt_.experts) * f * (selected ? opt_.c_agg : 1.0) / ng;
}

void MoeLayer::finish_losses(const double* st) {
  const int64_t M = opt_.experts;
  stats_.aux_loss = 0;
  for (int64_t i = 0; i < M; ++i) stats_.aux_loss += aux_coefficient(i) * st[i];
  stats_.z_loss = z_coefficient() * st[M];
}

void MoeLayer::backward(const Tensor& dout, Tensor& dx) {
  ops::Backend& be = *ctx_.backend;
  const int64_t n = dout.dim(0), m = x_recv_.dim(0), N = dout.dim(1);
  dw_ = reuse(dw_, {n, opt_.top_k}, dout.dtype(), dout.device());
  dispatcher_.combine_backward(be, dout, routing_.w, opt_.c_agg, dy_recv_, dw_);
  dx_recv_ = reuse(dx_recv_, {m, N}, experts_.compute_dtype(), dout.device());
  experts_.backward(be, dispatcher_.segments(), dy_recv_, dx_recv_);
  dispatcher_.dispatch_backward(be, dx_recv_, dx);
  Tensor none;
  router_->backward(be, x_, routing_, dw_, opt_.aux_loss > 0 ? aux_coef_ : none,
                    z_coefficient(), dx);
  if (probe_) probe_->record("router_logits_grad", layer_, router_->dlogits());
  stats_.a2a_seconds = dispatcher_.comm_seconds();
}

double MoeLayer::z_coefficient() const {
  return opt_.loss_scale * opt_.z_loss / double(opt_.global_tokens);
}

void MoeLayer::begin_step() { stats_.step_load = GlobalLoad{}; }

void MoeLayer::update_bias() {
  if (!router_->options().use_bias || opt_.bias_update_rate == 0) return;
  // b_i -= u * sign(load_i - 1/M), as b += delta on the device: the signs come from the host
  // counts, so nothing is read back.
  const int64_t M = opt_.experts;
  const double target = 1.0 / double(M);
  std::vector<double> delta(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) {
    const GlobalLoad& sl = stats_.step_load;
    double load = sl.assignments ? double(sl.routed[size_t(i)]) / double(sl.assignments) : 0;
    double s = (load > target) - (load < target);
    delta[size_t(i)] = -opt_.bias_update_rate * s;
  }
  ops::Backend& be = *ctx_.backend;
  bias_delta_ = reuse(bias_delta_, {M}, bias_.dtype(), bias_.device());
  upload_values(be, delta, bias_delta_);
  be.axpy(bias_delta_, bias_, 1.0);
}

}  // namespace moe::models
