// Flat-buffer layout of the parameters.
#include "src/optim/params.h"

namespace moe::optim {

Param* ParamStore::add(const std::string& name, Group group, const Shape& shape, bool expert,
                       int64_t expert_offset) {
  MOE_CHECK(!values_[0].defined(), "add ", name, " after allocate");
  MOE_CHECK(!find(name), "duplicate parameter ", name);
  Param p;
  p.name = name;
  p.group = group;
  p.shape = shape;
  p.expert = expert;
  p.expert_offset = expert_offset;
  p.offset = counts_[expert];
  counts_[expert] += p.numel();
  params_.push_back(std::move(p));
  return &params_.back();
}

void ParamStore::allocate(DType dtype, Device device, DType compute) {
  dtype_ = dtype;
  compute_dtype_ = compute;
  for (int e = 0; e < 2; ++e) {
    values_[e] = Tensor::zeros({counts_[e]}, dtype, device);
    grads_[e] = Tensor::zeros({counts_[e]}, dtype, device);
    compute_[e] = compute == dtype ? values_[e] : Tensor::zeros({counts_[e]}, compute, device);
  }
  for (Param& p : params_) {
    p.value = values_[p.expert].rows(p.offset, p.offset + p.numel()).view(p.shape);
    p.grad = grads_[p.expert].rows(p.offset, p.offset + p.numel()).view(p.shape);
    p.compute = compute_[p.expert].rows(p.offset, p.offset + p.numel()).view(p.shape);
  }
}

void ParamStore::refresh_compute(ops::Backend& be) {
  if (compute_dtype_ == dtype_) return;
  for (int e = 0; e < 2; ++e)
    if (counts_[e] > 0) be.cast(values_[e], compute_[e]);
}

Param* ParamStore::find(const std::string& name) {
  for (Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void ParamStore::zero_grads() {
  grads_[0].zero();
  grads_[1].zero();
}

}  // namespace moe::optim
