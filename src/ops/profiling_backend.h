// A Backend that forwards every op to another and records wall time per op (synchronizing the
// device around each call). `moe bench step --profile` prints its table.
#pragma once
#include <map>
#include <string>

#include "src/ops/backend.h"

namespace moe::ops {

struct OpTime {
  double seconds = 0;
  int64_t calls = 0;
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : in_(inner) {}
  const std::map<std::string, OpTime>& times() const { return times_; }
  void reset() { times_.clear(); }
  // Off: every op forwards untimed and unsynchronized (a step measured for its own host syncs).
  void set_enabled(bool on) { enabled_ = on; }
  // Per-op time per step over `steps` steps; shares of `total_seconds` (all of them).
  std::string table(double total_seconds, int steps) const;

  Device device() const override { return in_.device(); }
  const char* name() const override { return in_.name(); }
  void synchronize() override { in_.synchronize(); }
  void upload(void* dst, const void* src, size_t bytes) override { in_.upload(dst, src, bytes); }
  void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double al, double be) override;
  void grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& s, Tensor& y, double al) override;
  void grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& s, Tensor& dx, double al, double be) override;
  void grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& s, Tensor& dw, double al) override;
  void cast(const Tensor& src, Tensor& dst) override;
  void init_normal(Tensor& out, rng::Key key, int64_t per, const std::vector<uint32_t>& streams, double std) override;
  void fill(Tensor& t, double v) override;
  void axpy(const Tensor& x, Tensor& y, double a) override;
  void scale(Tensor& t, double a) override;
  double sum_squares(const Tensor& t) override;
  bool all_finite(const Tensor& t) override;
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double a, bool acc) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dt, double a) override;
  void rmsnorm_forward(const Tensor& x, const Tensor& g, Tensor& y, Tensor& r, double eps) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& g, const Tensor& r, const Tensor& dy, Tensor& dx, Tensor& dg) override;
  void attention_forward(const Tensor& qkv, Tensor& out, Tensor& p, int B, int T, int H, double s) override;
  void attention_backward(const Tensor& qkv, const Tensor& p, const Tensor& dout, Tensor& dqkv, int B, int T, int H, double s) override;
  void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T, int H, double s) override;
  void flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout, Tensor& dqkv, int B, int T, int H, double s) override;
  bool prefers_fused_attention() const override { return in_.prefers_fused_attention(); }
  void qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) override;
  void qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout, Tensor& dqkv,
                        int H) override;
  void rope_forward(Tensor& qkv, int T, int H, double base) override;
  void rope_backward(Tensor& dqkv, int T, int H, double base) override;

  void gelu_forward(const Tensor& h, Tensor& a, Gelu form) override;
  void gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) override;
  void swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) override;
  void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg, Tensor& du) override;
  void router_forward(const Tensor& l, const Tensor& b, const RouterOptions& o, Tensor& g, Tensor& i, Tensor& w, Tensor& s) override;
  void router_backward(const Tensor& l, const Tensor& g, const Tensor& i, const Tensor& w, const Tensor& dw, const Tensor& ac, double z, const RouterOptions& o, Tensor& dl) override;
  void gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) override;
  void combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c, Tensor& out) override;
  void combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot, const Tensor& w, double c, Tensor& dy, Tensor& dw) override;
  void scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) override;
  double cross_entropy(const Tensor& l, const Tensor& t, Tensor& dl, double gs) override;
  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps, double wd, int64_t step) override;
  void sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double mom, double wd) override;

 private:
  template <class F>
  auto timed(const char* op, F&& f) -> decltype(f());
  Backend& in_;
  std::map<std::string, OpTime> times_;
  bool enabled_ = true;
};

}  // namespace moe::ops
