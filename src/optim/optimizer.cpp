// Gradient reduction, global-norm clipping and per-group updates (full or ZeRO-1 sharded).
#include "src/optim/optimizer.h"

#include <cmath>

#include "src/optim/schedule.h"

namespace moe::optim {

Optimizer::Optimizer(const config::OptimConfig& cfg, int64_t total_steps, const ParamTable& table,
                     ParamStore& params, comm::ParallelContext& ctx, bool zero1)
    : cfg_(cfg), total_steps_(total_steps), table_(table), params_(params), ctx_(ctx), zero1_(zero1) {
  const int64_t C = params.count(false);
  const int P = ctx.world->size(), r = ctx.world->rank();
  const DType dt = params.dtype();
  const Device dev = ctx.device();
  if (zero1_) {
    shard_size_ = (C + P - 1) / P;
    shard_begin_ = std::min<int64_t>(C, r * shard_size_);
    shard_end_ = std::min<int64_t>(C, (r + 1) * shard_size_);
    padded_ = Tensor::zeros({shard_size_ * P}, dt, dev);
    grad_shard_ = Tensor::zeros({shard_size_}, dt, dev);
  } else {
    shard_begin_ = 0;
    shard_end_ = C;
  }
  const int64_t dense_len = zero1_ ? shard_size_ : C;
  const bool adam = cfg.name == "adamw";
  state_[0].m = Tensor::zeros({dense_len}, dt, dev);
  state_[1].m = Tensor::zeros({params.count(true)}, dt, dev);
  if (adam) {
    state_[0].v = Tensor::zeros({dense_len}, dt, dev);
    state_[1].v = Tensor::zeros({params.count(true)}, dt, dev);
  }
}

StepInfo Optimizer::reduce_gradients(bool local_loss_finite) {
  ops::Backend& be = *ctx_.backend;
  const DType dt = params_.dtype();
  const Device dev = ctx_.device();
  StepInfo info;
  Tensor& dense = params_.grads(false);
  Tensor& expert = params_.grads(true);
  const int64_t C = params_.count(false);
  double dense_sq = 0;
  if (zero1_) {
    padded_.rows(0, C).copy_from(dense);
    ctx_.world->reduce_scatter(padded_.raw(), grad_shard_.raw(), shard_size_, dt,
                               comm::ReduceOp::Sum, dev);
    dense_sq = be.sum_squares(grad_shard_.rows(0, shard_end_ - shard_begin_));
  } else {
    ctx_.world->all_reduce(dense.raw(), C, dt, comm::ReduceOp::Sum, dev);
  }
  if (ctx_.dp_size > 1 && expert.numel() > 0)
    ctx_.dp_expert->all_reduce(expert.raw(), expert.numel(), dt, comm::ReduceOp::Sum, dev);
  // One world reduction so every rank sees the same norm: dense shards sum to the dense part;
  // each expert's gradient is present on dp_size ranks.
  double sq[3] = {dense_sq, expert.numel() ? be.sum_squares(expert) : 0.0,
                  local_loss_finite ? 0.0 : 1.0};
  ctx_.world->all_reduce(sq, 3, DType::F64, comm::ReduceOp::Sum);
  if (!zero1_) sq[0] = be.sum_squares(dense);
  info.grad_norm = std::sqrt(sq[0] + sq[1] / ctx_.dp_size);
  info.finite = std::isfinite(info.grad_norm);
  info.loss_finite = sq[2] == 0;
  return info;
}

void Optimizer::apply(int64_t step, StepInfo& info) {
  ops::Backend& be = *ctx_.backend;
  const double f =
      lr_factor(cfg_.schedule, step, cfg_.warmup, decay_end(cfg_.decay_steps, total_steps_), cfg_.min_lr_ratio);
  for (int g = 0; g < kNumGroups; ++g) info.lr[g] = table_.groups[g].lr * f;
  Tensor dense_grads = zero1_ ? grad_shard_ : params_.grads(false);
  Tensor& expert_grads = params_.grads(true);
  if (cfg_.grad_clip > 0 && info.grad_norm > cfg_.grad_clip) {
    double s = cfg_.grad_clip / (info.grad_norm + 1e-6);
    be.scale(dense_grads, s);
    if (expert_grads.numel()) be.scale(expert_grads, s);
  }
  update_range(false, shard_begin_, shard_end_, dense_grads, step, info);
  update_range(true, 0, params_.count(true), expert_grads, step, info);
  if (zero1_) {
    const int64_t C = params_.count(false);
    Tensor& values = params_.values(false);
    Tensor mine = Tensor::zeros({shard_size_}, values.dtype(), values.device());
    if (shard_end_ > shard_begin_) mine.rows(0, shard_end_ - shard_begin_).copy_from(values.rows(shard_begin_, shard_end_));
    ctx_.world->all_gather(mine.raw(), padded_.raw(), shard_size_, values.dtype(), values.device());
    values.copy_from(padded_.rows(0, C));
  }
  steps_taken_ = step;
}

void Optimizer::update_range(bool expert, int64_t begin, int64_t end, const Tensor& grads,
                             int64_t step, const StepInfo& info) {
  ops::Backend& be = *ctx_.backend;
  SlotState& st = state_[expert];
  Tensor& values = params_.values(expert);
  const bool adam = cfg_.name == "adamw";
  for (Param& p : params_.params()) {
    if (p.expert != expert) continue;
    int64_t a = std::max(begin, p.offset), b = std::min(end, p.offset + p.numel());
    if (a >= b) continue;
    const GroupRule& r = table_[p.group];
    Tensor pv = values.rows(a, b);
    Tensor pg = grads.rows(a - begin, b - begin);
    Tensor pm = st.m.rows(a - begin, b - begin);
    double lr = info.lr[static_cast<int>(p.group)];
    if (adam) {
      Tensor pvv = st.v.rows(a - begin, b - begin);
      be.adamw_step(pv, pg, pm, pvv, lr, cfg_.beta1, cfg_.beta2, r.eps, r.weight_decay, step);
    } else {
      be.sgd_step(pv, pg, pm, lr, cfg_.momentum, r.weight_decay);
    }
  }
}

}  // namespace moe::optim
