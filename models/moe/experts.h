// The local experts as one grouped computation over the received rows:
// y = m_down * W_down phi(m_up * W_up x), phi = GELU (erf or tanh form), or SwiGLU with W_gate.
// Weights are stacked (M_local, out, in); the segments say which rows use which expert. The rows
// and the GEMMs are in the weights' compute dtype (bf16 under mixed precision); the weight
// gradients are written in the master dtype (f32) straight from the GEMMs' fp32 accumulators.
#pragma once
#include <vector>

#include "src/ops/backend.h"
#include "src/optim/params.h"

namespace moe::models {

struct ExpertParams {
  optim::Param* up = nullptr;    // (M_local, N_e, N)
  optim::Param* gate = nullptr;  // (M_local, N_e, N), SwiGLU only
  optim::Param* down = nullptr;  // (M_local, N, N_e)
  double up_mult = 1, gate_mult = 1, down_mult = 1;
  ops::Gelu gelu = ops::Gelu::Erf;  // without gate
};

class Experts {
 public:
  explicit Experts(ExpertParams p) : p_(p) {}
  // The dtype rows and GEMMs use: the weights' compute copies'.
  DType compute_dtype() const { return p_.up->compute.dtype(); }
  bool swiglu() const { return p_.gate != nullptr; }
  // x (m, N) -> y (m, N).
  void forward(ops::Backend& be, const Tensor& x, const std::vector<ops::Segment>& segs, Tensor& y);
  // Local expert `e` applied to every row of x (m, N) -> y (m, N), saving nothing (coordinate
  // checks observe one expert's output on all tokens).
  void apply_one(ops::Backend& be, const Tensor& x, int e, Tensor& y);
  // dy (m, N) -> dx (m, N) (written); weight gradients added.
  void backward(ops::Backend& be, const std::vector<ops::Segment>& segs, const Tensor& dy, Tensor& dx);

 private:
  ExpertParams p_;
  Tensor x_, h_, g_, a_;    // saved activations
  Tensor da_, dh_, dg_;     // scratch
};

}  // namespace moe::models
