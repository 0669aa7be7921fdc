// MoE layer forward/backward and the global statistics behind the auxiliary losses.
#include "models/moe/moe_layer.h"

#include <cmath>

#include "models/linear.h"

namespace moe::models {

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
  dispatcher_.reset_timer();
  dispatcher_.plan(idx_host_.data(), kept_.data(), n, K);
  dispatcher_.dispatch(be, x, x_recv_);
  const int64_t m = x_recv_.dim(0), N = x.dim(1);
  y_recv_ = reuse(y_recv_, {m, N}, x.dtype(), x.device());
  experts_.forward(be, x_recv_, dispatcher_.segments(), y_recv_);
  if (probe) {  // one expert's output before aggregation: this rank's first local expert, on every token
    Tensor y0 = Tensor::empty({n, N}, x.dtype(), x.device());
    experts_.apply_one(be, x, 0, y0);
    probe->record("expert_out", layer, y0);
  }
  dispatcher_.combine(be, y_recv_, routing_.w, opt_.c_agg, out);
  stats_.recv_rows = m;

  // Global statistics: sum_t p_ti and sum_t lse_t^2 over every rank.
  std::vector<double> st(M + 1);
  Tensor host_stats = routing_.stats.to(Device::CPU);
  for (int64_t i = 0; i <= M; ++i)
    st[i] = host_stats.dtype() == DType::F64 ? host_stats.data<double>()[i] : host_stats.data<float>()[i];
  ctx_.world->all_reduce(st.data(), M + 1, DType::F64, comm::ReduceOp::Sum);
  // Switch: aux = M sum_i f_i P_i, f_i the fraction of assignments to expert i and P_i the mean
  // probability. With aux_selected (the MSSP paper's code) f_i counts per token (sums to K) and
  // P_i averages the scaled gates c_agg g of the chosen experts.
  const double ng = double(opt_.global_tokens);
  const bool selected = router_->options().aux_selected;
  std::vector<double> coef(M);
  stats_.aux_loss = 0;
  for (int64_t i = 0; i < M; ++i) {
    double f = double(stats_.load.routed[i]) / ((selected ? 1.0 : double(K)) * ng);
    double pscale = selected ? opt_.c_agg : 1.0;
    stats_.aux_loss += opt_.aux_loss * double(M) * f * pscale * st[i] / ng;
    coef[i] = opt_.aux_loss * double(M) * f * pscale / ng;
  }
  stats_.z_loss = opt_.z_loss * st[M] / ng;
  if (opt_.aux_loss > 0) {
    Tensor host = Tensor::empty({M}, x.dtype(), Device::CPU);
    for (int64_t i = 0; i < M; ++i) {
      if (x.dtype() == DType::F64) host.data<double>()[i] = coef[i];
      else host.data<float>()[i] = static_cast<float>(coef[i]);
    }
    aux_coef_ = host.to(x.device());
  }
  if (probe) probe->record("moe_out", layer, out);
}

void MoeLayer::backward(const Tensor& dout, Tensor& dx) {
  ops::Backend& be = *ctx_.backend;
  const int64_t n = dout.dim(0), m = x_recv_.dim(0), N = dout.dim(1);
  dw_ = reuse(dw_, {n, opt_.top_k}, dout.dtype(), dout.device());
  dispatcher_.combine_backward(be, dout, routing_.w, opt_.c_agg, dy_recv_, dw_);
  dx_recv_ = reuse(dx_recv_, {m, N}, dout.dtype(), dout.device());
  experts_.backward(be, dispatcher_.segments(), dy_recv_, dx_recv_);
  dispatcher_.dispatch_backward(be, dx_recv_, dx);
  Tensor none;
  router_->backward(be, x_, routing_, dw_, opt_.aux_loss > 0 ? aux_coef_ : none,
                    opt_.z_loss / double(opt_.global_tokens), dx);
  stats_.a2a_seconds = dispatcher_.comm_seconds();
}

void MoeLayer::update_bias() {
  if (!router_->options().use_bias || opt_.bias_update_rate == 0) return;
  const int64_t M = opt_.experts;
  Tensor b = bias_.to(Device::CPU);
  const double target = 1.0 / double(M);
  for (int64_t i = 0; i < M; ++i) {
    double load = stats_.load.assignments ? double(stats_.load.routed[i]) / stats_.load.assignments : 0;
    double s = (load > target) - (load < target);
    if (b.dtype() == DType::F64) b.data<double>()[i] -= opt_.bias_update_rate * s;
    else b.data<float>()[i] -= static_cast<float>(opt_.bias_update_rate * s);
  }
  bias_.copy_from(b);
}

}  // namespace moe::models
