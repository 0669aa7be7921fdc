// How the CPU backend computes on bf16 tensors: an op that receives any bf16 tensor reruns
// itself on f32 copies (inputs widened exactly) and rounds its outputs back to bf16 once, when
// the scope ends: f32 arithmetic with bf16 storage, what the GPU's bf16 kernels do (fp32
// accumulation, one rounding on store). Outputs are widened too, for the ops that add into them.
#pragma once
#include <deque>
#include <initializer_list>

#include "src/core/bf16.h"
#include "src/core/tensor.h"

namespace moe::ops::cpu {

void cast_cpu(const Tensor& src, Tensor& dst);  // src/ops/cpu/cast.cpp

inline bool any_bf16(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined() && t->dtype() == DType::BF16) return true;
  return false;
}

class F32Scope {
 public:
  F32Scope() = default;
  F32Scope(const F32Scope&) = delete;
  F32Scope& operator=(const F32Scope&) = delete;
  // t itself, or an f32 copy of it when it is bf16.
  const Tensor& in(const Tensor& t) {
    if (!t.defined() || t.dtype() != DType::BF16) return t;
    return wide_.emplace_back(widen(t));
  }
  // Like in(), and the copy is rounded back into t when the scope ends.
  Tensor& out(Tensor& t) {
    if (!t.defined() || t.dtype() != DType::BF16) return t;
    Tensor& w = wide_.emplace_back(widen(t));
    back_.push_back({&t, &w});
    return w;
  }
  ~F32Scope() {
    for (auto& [dst, w] : back_) cast_cpu(*w, *dst);
  }

 private:
  static Tensor widen(const Tensor& t) {
    Tensor w = Tensor::empty(t.shape(), DType::F32);
    cast_cpu(t, w);
    return w;
  }
  std::deque<Tensor> wide_;  // stable addresses
  std::vector<std::pair<Tensor*, Tensor*>> back_;
};

}  // namespace moe::ops::cpu
