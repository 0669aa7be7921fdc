// ProfilingBackend: time per op, and the table it prints.
#include "src/ops/profiling_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace moe::ops {

template <class F>
auto ProfilingBackend::timed(const char* op, F&& f) -> decltype(f()) {
  if (!enabled_) return f();
  in_.synchronize();
  auto t0 = std::chrono::steady_clock::now();
  struct Done {
    ProfilingBackend* self;
    const char* op;
    std::chrono::steady_clock::time_point t0;
    ~Done() {
      self->in_.synchronize();
      OpTime& t = self->times_[op];
      t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++t.calls;
    }
  } done{this, op, t0};
  return f();
}

std::string ProfilingBackend::table(double total, int steps) const {
  std::vector<std::pair<std::string, OpTime>> rows(times_.begin(), times_.end());
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
  std::string out = "  op                   calls/step     ms/step   share\n";
  double sum = 0;
  char buf[160];
  for (auto& [name, t] : rows) {
    sum += t.seconds;
    std::snprintf(buf, sizeof buf, "  %-24s %6lld  %10.3f  %5.1f%%\n", name.c_str(), (long long)(t.calls / steps),
                  1e3 * t.seconds / steps, total > 0 ? 100 * t.seconds / total : 0.0);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "  %-24s %6s  %10.3f  %5.1f%%  (rest: communication, planning, host code)\n",
                "all ops", "", 1e3 * sum / steps, total > 0 ? 100 * sum / total : 0.0);
  return out + buf;
}

void ProfilingBackend::gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double al, double be) {
  timed("gemm", [&] { in_.gemm(a, ta, b, tb, c, al, be); });
}
void ProfilingBackend::grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& s, Tensor& y, double al) {
  timed("grouped_gemm_nt", [&] { in_.grouped_gemm_nt(x, w, s, y, al); });
}
void ProfilingBackend::grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& s, Tensor& dx, double al, double be) {
  timed("grouped_gemm_nn", [&] { in_.grouped_gemm_nn(dy, w, s, dx, al, be); });
}
void ProfilingBackend::grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& s, Tensor& dw, double al) {
  timed("grouped_gemm_tn", [&] { in_.grouped_gemm_tn(dy, x, s, dw, al); });
}
void ProfilingBackend::cast(const Tensor& src, Tensor& dst) { timed("cast", [&] { in_.cast(src, dst); }); }
void ProfilingBackend::init_normal(Tensor& out, rng::Key key, int64_t per, const std::vector<uint32_t>& streams, double std) {
  timed("init_normal", [&] { in_.init_normal(out, key, per, streams, std); });
}
void ProfilingBackend::flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& lse, int B, int T, int H, double s) {
  timed("flash_attention_forward", [&] { in_.flash_attention_forward(qkv, out, lse, B, T, H, s); });
}
void ProfilingBackend::flash_attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout, Tensor& dqkv, int B, int T, int H, double s) {
  timed("flash_attention_backward", [&] { in_.flash_attention_backward(qkv, out, lse, dout, dqkv, B, T, H, s); });
}
void ProfilingBackend::fill(Tensor& t, double v) { timed("fill", [&] { in_.fill(t, v); }); }
void ProfilingBackend::axpy(const Tensor& x, Tensor& y, double a) { timed("axpy", [&] { in_.axpy(x, y, a); }); }
void ProfilingBackend::scale(Tensor& t, double a) { timed("scale", [&] { in_.scale(t, a); }); }
double ProfilingBackend::sum_squares(const Tensor& t) { return timed("sum_squares", [&] { return in_.sum_squares(t); }); }
bool ProfilingBackend::all_finite(const Tensor& t) { return timed("all_finite", [&] { return in_.all_finite(t); }); }
void ProfilingBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, double a, bool acc) {
  timed("embedding_forward", [&] { in_.embedding_forward(ids, table, out, a, acc); });
}
void ProfilingBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dt, double a) {
  timed("embedding_backward", [&] { in_.embedding_backward(ids, dout, dt, a); });
}
void ProfilingBackend::rmsnorm_forward(const Tensor& x, const Tensor& g, Tensor& y, Tensor& r, double eps) {
  timed("rmsnorm_forward", [&] { in_.rmsnorm_forward(x, g, y, r, eps); });
}
void ProfilingBackend::rmsnorm_backward(const Tensor& x, const Tensor& g, const Tensor& r, const Tensor& dy, Tensor& dx, Tensor& dg) {
  timed("rmsnorm_backward", [&] { in_.rmsnorm_backward(x, g, r, dy, dx, dg); });
}
void ProfilingBackend::attention_forward(const Tensor& qkv, Tensor& out, Tensor& p, int B, int T, int H, double s) {
  timed("attention_forward", [&] { in_.attention_forward(qkv, out, p, B, T, H, s); });
}
void ProfilingBackend::attention_backward(const Tensor& qkv, const Tensor& p, const Tensor& dout, Tensor& dqkv, int B, int T, int H, double s) {
  timed("attention_backward", [&] { in_.attention_backward(qkv, p, dout, dqkv, B, T, H, s); });
}
void ProfilingBackend::qk_norm_forward(const Tensor& qkv, Tensor& out, Tensor& rstd, int H, double eps) {
  timed("qk_norm_forward", [&] { in_.qk_norm_forward(qkv, out, rstd, H, eps); });
}
void ProfilingBackend::qk_norm_backward(const Tensor& qkv, const Tensor& rstd, const Tensor& dout, Tensor& dqkv,
                                        int H) {
  timed("qk_norm_backward", [&] { in_.qk_norm_backward(qkv, rstd, dout, dqkv, H); });
}
void ProfilingBackend::rope_forward(Tensor& qkv, int T, int H, double base) {
  timed("rope_forward", [&] { in_.rope_forward(qkv, T, H, base); });
}
void ProfilingBackend::rope_backward(Tensor& dqkv, int T, int H, double base) {
  timed("rope_backward", [&] { in_.rope_backward(dqkv, T, H, base); });
}
void ProfilingBackend::gelu_forward(const Tensor& h, Tensor& a, Gelu form) {
  timed("gelu_forward", [&] { in_.gelu_forward(h, a, form); });
}
void ProfilingBackend::gelu_backward(const Tensor& h, const Tensor& da, Tensor& dh, Gelu form) {
  timed("gelu_backward", [&] { in_.gelu_backward(h, da, dh, form); });
}
void ProfilingBackend::swiglu_forward(const Tensor& g, const Tensor& u, Tensor& a) {
  timed("swiglu_forward", [&] { in_.swiglu_forward(g, u, a); });
}
void ProfilingBackend::swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, Tensor& dg, Tensor& du) {
  timed("swiglu_backward", [&] { in_.swiglu_backward(g, u, da, dg, du); });
}
void ProfilingBackend::router_forward(const Tensor& l, const Tensor& b, const RouterOptions& o, Tensor& g, Tensor& i, Tensor& w, Tensor& s) {
  timed("router_forward", [&] { in_.router_forward(l, b, o, g, i, w, s); });
}
void ProfilingBackend::router_backward(const Tensor& l, const Tensor& g, const Tensor& i, const Tensor& w, const Tensor& dw, const Tensor& ac, double z, const RouterOptions& o, Tensor& dl) {
  timed("router_backward", [&] { in_.router_backward(l, g, i, w, dw, ac, z, o, dl); });
}
void ProfilingBackend::gather_rows(const Tensor& src, const Tensor& rows, Tensor& dst) {
  timed("gather_rows", [&] { in_.gather_rows(src, rows, dst); });
}
void ProfilingBackend::combine_forward(const Tensor& y, const Tensor& slot, const Tensor& w, double c, Tensor& out) {
  timed("combine_forward", [&] { in_.combine_forward(y, slot, w, c, out); });
}
void ProfilingBackend::combine_backward(const Tensor& dout, const Tensor& y, const Tensor& slot, const Tensor& w, double c, Tensor& dy, Tensor& dw) {
  timed("combine_backward", [&] { in_.combine_backward(dout, y, slot, w, c, dy, dw); });
}
void ProfilingBackend::scatter_add_slots(const Tensor& src, const Tensor& slot, Tensor& dx) {
  timed("scatter_add_slots", [&] { in_.scatter_add_slots(src, slot, dx); });
}
double ProfilingBackend::cross_entropy(const Tensor& l, const Tensor& t, Tensor& dl, double gs) {
  return timed("cross_entropy", [&] { return in_.cross_entropy(l, t, dl, gs); });
}
void ProfilingBackend::adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps, double wd, int64_t step) {
  timed("adamw_step", [&] { in_.adamw_step(p, g, m, v, lr, b1, b2, eps, wd, step); });
}
void ProfilingBackend::sgd_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, double mom, double wd) {
  timed("sgd_step", [&] { in_.sgd_step(p, g, buf, lr, mom, wd); });
}

}  // namespace moe::ops
