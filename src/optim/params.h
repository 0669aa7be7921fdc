// Parameters of a model: each a named tensor in one group, with its gradient. Dense parameters
// (replicated on every rank) and expert parameters (stacked as (M_local, ...) per rank) live in
// two flat buffers each, so gradients are reduced in one call and ZeRO-1 can shard them.
#pragma once
#include <deque>
#include <string>
#include <vector>

#include "src/core/tensor.h"
#include "src/ops/backend.h"
#include "src/optim/groups.h"

namespace moe::optim {

struct Param {
  std::string name;  // e.g. "blocks.2.moe.expert_up": the same on every rank
  Group group;
  Shape shape;
  bool expert = false;          // first dimension indexes local experts
  int64_t expert_offset = 0;    // global index of local expert 0
  int64_t offset = 0;           // element offset in its flat buffer
  Tensor value, grad;           // views into the flat buffers (after allocate): the master dtype
  // What GEMMs read: `value` itself, or its bf16 copy under mixed precision (train.dtype =
  // "bf16"), refreshed from the master weights by ParamStore::refresh_compute.
  Tensor compute;
  int64_t numel() const { return shape_numel(shape); }
};

class ParamStore {
 public:
  // Registers a parameter; its tensors exist after allocate(). The pointer stays valid.
  Param* add(const std::string& name, Group group, const Shape& shape, bool expert = false,
             int64_t expert_offset = 0);
  // Master values and gradients in `dtype`; a second copy of the values in `compute` for the
  // GEMMs when it differs (bf16 under mixed precision), else Param::compute aliases value.
  void allocate(DType dtype, Device device, DType compute);
  void allocate(DType dtype, Device device) { allocate(dtype, device, dtype); }
  DType compute_dtype() const { return compute_dtype_; }
  // compute = value rounded to the compute dtype (two casts; nothing when they alias).
  void refresh_compute(ops::Backend& be);

  std::deque<Param>& params() { return params_; }
  const std::deque<Param>& params() const { return params_; }
  Param* find(const std::string& name);
  // Flat buffers: [0] dense, [1] expert.
  Tensor& values(bool expert) { return values_[expert]; }
  Tensor& grads(bool expert) { return grads_[expert]; }
  int64_t count(bool expert) const { return counts_[expert]; }
  DType dtype() const { return dtype_; }
  void zero_grads();

 private:
  std::deque<Param> params_;
  int64_t counts_[2] = {0, 0};
  Tensor values_[2], grads_[2], compute_[2];
  DType dtype_ = DType::F32, compute_dtype_ = DType::F32;
};

}  // namespace moe::optim
