// Transformer construction, initialization, forward and backward.
#include "models/transformer.h"

#include "models/init.h"
#include "models/linear.h"
#include "src/core/rng.h"

namespace moe::models {
namespace {
using optim::Group;

ops::RouterOptions router_options(const optim::ParamTable& t, int top_k) {
  ops::RouterOptions o;
  o.gate = t.layer.gate;
  o.top_k = top_k;
  o.renormalize = t.layer.renormalize;
  o.use_bias = t.layer.expert_bias;
  o.aux_selected = t.layer.aux_selected;
  return o;
}
}  // namespace

Transformer::Transformer(const config::Config& cfg, const optim::ParamTable& table,
                         comm::ParallelContext& ctx, DType dtype, DType compute)
    : cfg_(cfg), table_(table), ctx_(ctx), dtype_(dtype) {
  const auto& m = cfg.model;
  const int world = ctx.world->size();
  MOE_CHECK(cfg.train.batch % world == 0, "global batch ", cfg.train.batch,
            " not divisible by world size ", world);
  MOE_CHECK(cfg.moe.experts % ctx.ep_size == 0, "experts not divisible by ep");
  // Forward and backward see one micro-batch at a time (train.micro_batch; 0 = the local batch).
  B_ = cfg.train.micro_batch > 0 ? cfg.train.micro_batch : cfg.train.batch / world;
  MOE_CHECK((cfg.train.batch / world) % B_ == 0, "train.micro_batch ", B_,
            " does not divide the local batch ", cfg.train.batch / world);
  T_ = m.seq_len;
  N_ = m.width;
  V_ = m.vocab;
  n_ = B_ * T_;
  const int64_t N = N_, F = cfg.moe.expert_width, M = cfg.moe.experts;
  const int64_t Ml = M / ctx.ep_size, e0 = ctx.ep_rank * Ml;
  const bool swiglu = cfg.moe.activation == "swiglu";

  embed_ = params_.add("embed", Group::Embed, {V_, N});
  if (m.position == "learned") pos_ = params_.add("pos_embed", Group::PosEmbed, {T_, N});
  const int64_t Fd = config::mlp_width(m);
  struct Pending {
    optim::Param *qkv = nullptr, *out = nullptr, *router = nullptr, *up = nullptr, *down = nullptr;
    ExpertParams ex;
  };
  std::vector<Pending> pend;
  for (int l = 0; l < m.depth; ++l) {
    std::string p = "blocks." + std::to_string(l) + ".";
    if (m.attention) {
      Sublayer s;
      s.attention = true;
      s.layer = l;
      s.norm = params_.add(p + "attn_norm", Group::Norm, {N});
      Pending pa;
      pa.qkv = params_.add(p + "attn.qkv", Group::AttnQKV, {3 * N, N});
      pa.out = params_.add(p + "attn.out", Group::AttnOut, {N, N});
      subs_.push_back(std::move(s));
      pend.push_back(pa);
    }
    Sublayer s;
    s.layer = l;
    if (!config::is_moe_block(cfg.moe, l)) {  // moe.stride: a dense MLP in this block
      s.norm = params_.add(p + "mlp_norm", Group::Norm, {N});
      Pending pd;
      pd.up = params_.add(p + "mlp.up", Group::MlpUp, {Fd, N});
      pd.down = params_.add(p + "mlp.down", Group::MlpDown, {N, Fd});
      subs_.push_back(std::move(s));
      pend.push_back(pd);
      continue;
    }
    s.norm = params_.add(p + "moe_norm", Group::Norm, {N});
    Pending pm;
    pm.router = params_.add(p + "moe.router", Group::Router, {M, N});
    pm.ex.up = params_.add(p + "moe.expert_up", Group::ExpertUp, {Ml, F, N}, true, e0);
    if (swiglu) pm.ex.gate = params_.add(p + "moe.expert_gate", Group::ExpertGate, {Ml, F, N}, true, e0);
    pm.ex.down = params_.add(p + "moe.expert_down", Group::ExpertDown, {Ml, N, F}, true, e0);
    subs_.push_back(std::move(s));
    pend.push_back(pm);
  }
  final_norm_ = params_.add("final_norm", Group::Norm, {N});
  unembed_ = params_.add("unembed", Group::Unembed, {V_, N});
  params_.allocate(dtype, ctx.device(), compute);

  const auto mult = [&](Group g) { return table_[g].multiplier; };
  AttentionShape as{int(B_), int(T_), int(m.heads), table_.layer.attn_scale};
  as.qk_norm = m.qk_norm;
  as.norm_eps = m.norm_eps;
  as.rope = m.position == "rope";
  as.rope_base = m.rope_base;
  MoeOptions mo;
  mo.experts = M;
  mo.top_k = int(cfg.moe.top_k);
  mo.c_agg = table_.layer.c_agg;
  mo.capacity_factor = cfg.moe.capacity_factor;
  mo.aux_loss = cfg.moe.aux_loss;
  mo.z_loss = cfg.moe.z_loss;
  mo.bias_update_rate = cfg.moe.bias_update_rate;
  // Routing statistics (capacity, aux and z losses) are over one micro-step's global tokens;
  // each micro-step's aux and z terms weigh 1 / micro-steps, so that a step's losses and
  // gradients are their means over its micro-steps (the cross-entropy sums exactly).
  mo.global_tokens = B_ * world * T_;
  mo.loss_scale = double(B_ * world) / double(cfg.train.batch);
  mo.force_expert = cfg.debug.route_all_to_expert;
  for (size_t i = 0; i < subs_.size(); ++i) {
    Pending& p = pend[i];
    if (subs_[i].attention) {
      subs_[i].attn = std::make_unique<Attention>(p.qkv, p.out, mult(Group::AttnQKV),
                                                  mult(Group::AttnOut), as);
    } else if (p.up) {
      subs_[i].mlp = std::make_unique<DenseMlp>(p.up, p.down, mult(Group::MlpUp), mult(Group::MlpDown),
                                                 gelu_form(cfg.moe));
    } else {
      p.ex.up_mult = mult(Group::ExpertUp);
      p.ex.gate_mult = mult(Group::ExpertGate);
      p.ex.down_mult = mult(Group::ExpertDown);
      p.ex.gelu = gelu_form(cfg.moe);
      auto router = std::make_unique<Router>(p.router, router_options(table_, mo.top_k),
                                             mult(Group::Router));
      subs_[i].moe = std::make_unique<MoeLayer>(ctx, mo, std::move(router), p.ex,
                                                Tensor::zeros({M}, dtype, ctx.device()));
    }
  }

  Tensor pos = Tensor::empty({n_}, DType::I32);
  for (int64_t i = 0; i < n_; ++i) pos.data<int32_t>()[i] = static_cast<int32_t>(i % T_);
  pos_ids_ = pos.to(ctx.device());
  h_.resize(subs_.size() + 1);
  for (Tensor& t : h_) t = Tensor::empty({n_, N}, dtype, ctx.device());
}

void Transformer::init_params(uint64_t seed) {
  // On the compute device: the CPU backend evaluates rng::normal on the host, the CUDA backend
  // in a kernel, bit-identical (tests/cuda/model_test.cpp), with no host copy of the weights.
  ops::Backend& be = *ctx_.backend;
  for (optim::Param& p : params_.params()) {
    const optim::GroupRule& r = table_[p.group];
    if (r.init_kind == "ones" || r.init_kind == "zero") {
      be.fill(p.value, r.init_kind == "ones" ? 1.0 : 0.0);
      continue;
    }
    const int64_t units = p.expert ? p.shape[0] : 1;
    if (units == 0 || p.numel() == 0) continue;
    std::vector<uint32_t> streams(static_cast<size_t>(units));
    for (int64_t u = 0; u < units; ++u) streams[size_t(u)] = init_stream(p, u, r.init_kind == "tied");
    be.init_normal(p.value, rng::make_key(seed, p.name), p.numel() / units, streams, r.init_std);
  }
  for (MoeLayer* m : moe_layers()) be.fill(m->bias(), 0.0);
}

std::vector<MoeLayer*> Transformer::moe_layers() {
  std::vector<MoeLayer*> out;
  for (Sublayer& s : subs_)
    if (s.moe) out.push_back(s.moe.get());
  return out;
}

void Transformer::update_expert_bias() {
  for (MoeLayer* m : moe_layers()) m->update_bias();
}

LossParts Transformer::run(const Batch& b, bool backward_pass, bool new_step) {
  MOE_CHECK(b.inputs.numel() == n_ && b.targets.numel() == n_, "batch of ", b.inputs.numel(),
            " tokens, expected ", n_);
  if (new_step)
    for (MoeLayer* m : moe_layers()) m->begin_step();
  LossParts loss;
  params_.refresh_compute(*ctx_.backend);  // bf16 weights from this step's master weights
  forward(b, loss);
  if (backward_pass) backward(b);
  return loss;
}

void Transformer::forward(const Batch& b, LossParts& loss) {
  ops::Backend& be = *ctx_.backend;
  const Device dev = ctx_.device();
  const double res = table_.layer.residual_mult;
  be.embedding_forward(b.inputs, embed_->value, h_[0], table_[Group::Embed].multiplier, false);
  if (pos_) be.embedding_forward(pos_ids_, pos_->value, h_[0], table_[Group::PosEmbed].multiplier, true);
  if (probe_) probe_->record("embed_out", -1, h_[0]);
  sub_out_ = reuse(sub_out_, {n_, N_}, dtype_, dev);
  for (size_t i = 0; i < subs_.size(); ++i) {
    Sublayer& s = subs_[i];
    s.xn = reuse(s.xn, {n_, N_}, dtype_, dev);
    s.rstd = reuse(s.rstd, {n_}, dtype_, dev);
    be.rmsnorm_forward(h_[i], s.norm->value, s.xn, s.rstd, cfg_.model.norm_eps);
    if (probe_) probe_->record(s.attention ? "attn_in" : "moe_in", s.layer, s.xn);
    if (s.attention) {
      s.attn->forward(be, s.xn, sub_out_);
      if (probe_) probe_->record("attn_heads", s.layer, s.attn->heads_out());
      if (probe_) probe_->record("attn_out", s.layer, sub_out_);
    } else if (s.mlp) {
      s.mlp->forward(be, s.xn, sub_out_);
    } else {
      s.moe->forward(s.xn, sub_out_, probe_, s.layer);
    }
    h_[i + 1].copy_from(h_[i]);
    be.axpy(sub_out_, h_[i + 1], res);
    if (probe_ && !s.attention) probe_->record("residual", s.layer, h_[i + 1]);
  }
  finish_moe_losses();
  fn_ = reuse(fn_, {n_, N_}, dtype_, dev);
  frstd_ = reuse(frstd_, {n_}, dtype_, dev);
  be.rmsnorm_forward(h_.back(), final_norm_->value, fn_, frstd_, cfg_.model.norm_eps);
  logits_ = reuse(logits_, {n_, V_}, dtype_, dev);  // f32 logits and loss under mixed precision
  fna_ = as_dtype(be, fn_, unembed_->compute.dtype(), fna_);
  if (probe_) probe_->record("unembed_in", -1, fn_);
  linear_forward(be, fna_, unembed_->compute, logits_, table_.layer.output_mult);
  if (probe_) probe_->record("logits", -1, logits_);
  const double n_global = double(cfg_.train.batch * T_);
  double local = be.cross_entropy(logits_, b.targets, logits_, 1.0 / n_global);  // logits_ := dlogits
  if (probe_) probe_->record("logits_grad", -1, logits_);
  loss.ce = ctx_.world->sum(local) / n_global;
  for (MoeLayer* m : moe_layers()) {
    loss.aux += m->stats().aux_loss;
    loss.z += m->stats().z_loss;
  }
}

void Transformer::finish_moe_losses() {
  // Every MoE layer's routing statistics (M + 1 each) in one device buffer, one download and
  // one sum over the world: one host wait per step for all layers' aux and z losses.
  const std::vector<MoeLayer*> layers = moe_layers();
  if (layers.empty()) return;
  const int64_t w = cfg_.moe.experts + 1, L = int64_t(layers.size());
  stats_all_ = reuse(stats_all_, {L * w}, dtype_, ctx_.device());
  for (int64_t l = 0; l < L; ++l) {
    Tensor dst = stats_all_.rows(l * w, (l + 1) * w);
    ctx_.backend->cast(layers[size_t(l)]->routing_stats(), dst);
  }
  Tensor host = stats_all_.to(Device::CPU);
  std::vector<double> st(static_cast<size_t>(L * w));
  for (int64_t i = 0; i < L * w; ++i)
    st[size_t(i)] = dtype_ == DType::F64 ? host.data<double>()[i] : host.data<float>()[i];
  ctx_.world->all_reduce(st.data(), L * w, DType::F64, comm::ReduceOp::Sum);
  for (int64_t l = 0; l < L; ++l) layers[size_t(l)]->finish_losses(st.data() + l * w);
}

void Transformer::backward(const Batch& b) {
  ops::Backend& be = *ctx_.backend;
  const Device dev = ctx_.device();
  const double res = table_.layer.residual_mult;
  dfn_ = reuse(dfn_, {n_, N_}, dtype_, dev);
  dh_ = reuse(dh_, {n_, N_}, dtype_, dev);
  dsub_ = reuse(dsub_, {n_, N_}, dtype_, dev);
  dxn_ = reuse(dxn_, {n_, N_}, dtype_, dev);
  const Tensor dlogits = as_dtype(be, logits_, unembed_->compute.dtype(), dlogits_a_);
  linear_backward(be, fna_, unembed_->compute, dlogits, &dfn_, unembed_->grad,
                  table_.layer.output_mult, false);
  be.fill(dh_, 0);
  be.rmsnorm_backward(h_.back(), final_norm_->value, frstd_, dfn_, dh_, final_norm_->grad);
  for (size_t i = subs_.size(); i-- > 0;) {
    Sublayer& s = subs_[i];
    dsub_.copy_from(dh_);
    be.scale(dsub_, res);
    if (s.attention) {
      s.attn->backward(be, dsub_, dxn_);
    } else if (s.mlp) {
      s.mlp->backward(be, dsub_, dxn_);
    } else {
      be.fill(dxn_, 0);
      s.moe->backward(dsub_, dxn_);
    }
    be.rmsnorm_backward(h_[i], s.norm->value, s.rstd, dxn_, dh_, s.norm->grad);
  }
  be.embedding_backward(b.inputs, dh_, embed_->grad, table_[Group::Embed].multiplier);
  if (pos_) be.embedding_backward(pos_ids_, dh_, pos_->grad, table_[Group::PosEmbed].multiplier);
}

}  // namespace moe::models
