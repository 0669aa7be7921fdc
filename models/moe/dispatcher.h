// The token dispatcher: the only part of the MoE layer that communicates (Megatron-Core's
// split). dispatch() sends each kept (token, choice) row to the rank owning its expert;
// combine() brings expert outputs back and sums them with the gate weights. The backward
// passes run the same exchanges in the opposite directions. With one EP rank the exchange is
// skipped and buffers are shared.
#pragma once
#include "comm/communicator.h"
#include "models/moe/dispatch_plan.h"
#include "src/ops/backend.h"

namespace moe::models {

class Dispatcher {
 public:
  Dispatcher(comm::Communicator& ep, int64_t experts_per_rank)
      : ep_(ep), experts_per_rank_(experts_per_rank) {}

  // Plans the step from host routing decisions (idx, kept: n x K); collective over EP.
  void plan(const int32_t* idx, const uint8_t* kept, int64_t n, int K);
  const DispatchPlan& current() const { return plan_; }
  const std::vector<ops::Segment>& segments() const { return plan_.segments; }

  // x (n, N) -> x_recv (m_recv, N), rows grouped by segments().
  void dispatch(ops::Backend& be, const Tensor& x, Tensor& x_recv);
  // y_recv (m_recv, N) -> out (n, N) = c * sum_k w y. Keeps the returned rows for backward.
  void combine(ops::Backend& be, const Tensor& y_recv, const Tensor& w, double c, Tensor& out);
  // dout (n, N) -> dy_recv (m_recv, N), dw (n, K).
  void combine_backward(ops::Backend& be, const Tensor& dout, const Tensor& w, double c,
                        Tensor& dy_recv, Tensor& dw);
  // dx_recv (m_recv, N) -> dx (n, N), added.
  void dispatch_backward(ops::Backend& be, const Tensor& dx_recv, Tensor& dx);

  double comm_seconds() const { return comm_seconds_; }
  void reset_timer() { comm_seconds_ = 0; }

 private:
  // Rows from send order to expert order (forward == true) or back.
  void exchange(const Tensor& src, Tensor& dst, bool to_experts);

  comm::Communicator& ep_;
  int64_t experts_per_rank_;
  DispatchPlan plan_;
  Tensor perm_, slot_;       // device copies of the plan
  Tensor send_, y_back_, dy_send_, dx_back_;
  // Growing storage behind the per-step row buffers (models/linear.h reuse): the received rows
  // stay valid until this layer's next dispatch, which is after their backward.
  Tensor x_recv_buf_, y_back_buf_, dy_recv_buf_;
  // Mixed precision: rows travel in their own dtype (bf16), the combine and the scatter-add
  // run in the token side's (f32); these hold the converted copies.
  DType rows_dtype_ = DType::F32;
  Tensor y_wide_, dy_narrow_, dx_wide_;
  double comm_seconds_ = 0;
};

}  // namespace moe::models
