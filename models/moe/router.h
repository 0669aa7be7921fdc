// The router: logits r = mult * x W_r^T (master precision), gates, top-K selection and weights.
// The auxiliary losses (Switch load balancing, z-loss) need counts over the global batch, which
// the MoE layer gathers; the router takes their coefficients in backward.
#pragma once
#include "src/ops/backend.h"
#include "src/optim/params.h"

namespace moe::models {

struct Routing {
  Tensor logits;  // (n, M)
  Tensor gates;   // (n, M)  g
  Tensor idx;     // (n, K)  i32 expert ids, best first
  Tensor w;       // (n, K)  combine weights
  Tensor stats;   // (M + 1) sum_t p_t, sum_t lse_t^2
};

class Router {
 public:
  Router(optim::Param* weight, ops::RouterOptions opt, double mult)
      : weight_(weight), opt_(opt), mult_(mult) {}
  // x (n, N); bias (M) used when the options say so.
  void forward(ops::Backend& be, const Tensor& x, const Tensor& bias, Routing& out);
  // dw (n, K) -> dx (adds), dW_r (adds).
  void backward(ops::Backend& be, const Tensor& x, const Routing& r, const Tensor& dw,
                const Tensor& aux_coef, double z_coef, Tensor& dx);
  const ops::RouterOptions& options() const { return opt_; }
  // d loss / d logits (n, M) of the last backward.
  const Tensor& dlogits() const { return dlogits_; }

 private:
  optim::Param* weight_;  // (M, N)
  ops::RouterOptions opt_;
  double mult_;
  Tensor dlogits_;
};

}  // namespace moe::models
