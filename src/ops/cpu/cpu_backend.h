// The CPU reference backend: every op in plain C++ (BLAS for GEMMs), templated on the element
// type so that gradient checks can run the same code in double precision.
#pragma once
#include "src/ops/backend.h"
#include "src/ops/cpu/dispatch.h"

namespace moe::ops::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  const char* name() const override { return "cpu"; }

  void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta) override;
  void grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& segs, Tensor& y,
                       double alpha) override;
  void grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& segs,
                       Tensor& dx, double alpha, double beta) override;
  void grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& segs,
                       Tensor& dw, double alpha) override;

  void cast(const Tensor& src, Tensor& dst) override;
  void init_normal(Tensor& out, rng::Key key, int64_t per, const std::vector<uint32_t>& streams,
                   double std) override;
  void fill(Tensor& t, double value) override;
  void axpy(const Tensor& x, Tensor& y, double alpha) override;
  void scale(Tensor& t, double alpha) override;
  double sum_squares(const Tensor& t) override;
  bool all_finite(const Tensor& t) override;

  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double alpha,
                         bool accumulate) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable,
                          double alpha) override;

  void rmsnorm_forward(const Tensor& x, const Tensor& gain, Tensor& y, Tensor& rstd,
                       double eps) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& gain, const Tensor& rstd, const Tensor& dy,
                        Tensor& dx, Tensor& dgain) override;

  void attention_forward(const Tensor& qkv, Tensor& out, Tensor& probs, int B, int T, int H,
                         double scale) override;
  void attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout, Tensor& dqkv,
                          int B, int T, int H, double scale) override;

  void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T, int H,
                               double scale) override;
  void flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                const Tensor& dout, Tensor& dqkv, int B, int T, int H,
                                double scale) override;

  void qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) override;
  void qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout, Tensor& dqkv,
                        int H) override;
  void rope_forward(Tensor& qkv, int T, int H, double base) override;
  void rope_backward(Tensor& dqkv, int T, int H, double base) override;

  void gelu_forward(const Tensor& h, Tensor& a, Gelu form) override;
  void gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) override;
  void swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) override;
  void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg,
                       Tensor& du) override;

  void router_forward(const Tensor& logits, const Tensor& bias, const RouterOptions& opt,
                      Tensor& gates, Tensor& idx, Tensor& w, Tensor& stats) override;
  void router_backward(const Tensor& logits, const Tensor& gates, const Tensor& idx, const Tensor& w,
                       const Tensor& dw, const Tensor& aux_coef, double z_coef,
                       const RouterOptions& opt, Tensor& dlogits) override;

  void gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) override;
  void combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c,
                       Tensor& out) override;
  void combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot, const Tensor& w,
                        double c, Tensor& dy, Tensor& dw) override;
  void scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) override;

  double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& dlogits,
                       double grad_scale) override;

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double wd, int64_t step) override;
  void sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double momentum,
                double wd) override;
};

}  // namespace moe::ops::cpu
