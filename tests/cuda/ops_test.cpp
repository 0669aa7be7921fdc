// Every CUDA op against the CPU reference, in the manner of ggml's test-backend-ops: a table of
// op cases, each run on both backends from the same inputs, each output compared by its
// normalized error (relative L2 norm, cuda_test_util.h) against a tolerance per dtype, integer
// outputs exactly. Each case also runs twice on the GPU and must give the same bits: every op
// is deterministic (no atomics in any floating-point sum).
//
// Tolerances: f32 1e-5 (summation order and CUDA's expf / tanhf against the CPU's polynomial
// exp move results by a few ulp). bf16 2e-2: both backends see the same bf16 input values; the
// CPU reference computes in f32, the GPU rounds its outputs, and stored intermediates such as
// attention probabilities, to bf16 (2^-9 relative each, ~1e-3 in the L2 measure). Cases whose
// outputs stay f32 under bf16 inputs (optimizers, sums) keep the f32 tolerance.
#include <functional>
#include <map>

#include "tests/cuda/cuda_test_util.h"

namespace moe::test {
namespace {

using ops::gpu::GroupedGemmMode;
constexpr double kTolF32 = 1e-5;
constexpr double kTolBf16 = 2e-2;

// What a case's run function gets: the backend, and the dtype to build its tensors in.
struct Env {
  ops::Backend& be;
  DType dt;
  Device dev() const { return be.device(); }
  // The dtype tensors have on this backend: dt on the GPU, f32 on the CPU reference.
  DType cdt() const { return dev() == Device::CPU ? DType::F32 : dt; }
  Tensor in(const Tensor& host) const { return to_backend(host, dev(), dt); }
  Tensor randn(const Shape& s, const std::string& name, double scale = 1.0) const {
    return in(moe::test::randn(s, DType::F32, name, scale));
  }
  // Always f32 (router, master weights, optimizer state).
  Tensor randn32(const Shape& s, const std::string& name, double scale = 1.0) const {
    return moe::test::randn(s, DType::F32, name, scale).to(dev());
  }
  Tensor empty(const Shape& s) const { return Tensor::empty(s, cdt(), dev()); }
  Tensor empty32(const Shape& s) const { return Tensor::empty(s, DType::F32, dev()); }
  Tensor ints(const std::vector<int32_t>& v, const Shape& s) const {
    Tensor t = Tensor::empty(s, DType::I32);
    std::copy(v.begin(), v.end(), t.data<int32_t>());
    return t.to(dev());
  }
};

using Outputs = std::vector<Tensor>;  // on the host (to_host)

struct OpCase {
  std::string name;
  std::function<Outputs(const Env&)> run;
  bool bf16 = true;  // also run with bf16 tensors (the router is f32 only)
  double tol_bf16 = kTolBf16;
};

Tensor scalar(double v) {
  Tensor t = Tensor::empty({1}, DType::F64);
  t.data<double>()[0] = v;
  return t;
}

// Slots for combine / scatter: each kept (t, k) names a distinct row of y, in shuffled order;
// a `drop` fraction is -1 (dropped); 3 rows at the end are named by no slot.
struct Slots {
  std::vector<int32_t> slot;
  int64_t m = 0;
};
Slots make_slots(int64_t n, int K, double drop, const std::string& name) {
  rng::Stream s(rng::make_key(4, name), 0);
  Slots r;
  r.slot.assign(n * K, -1);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n * K; ++i)
    if (s.next_double() >= drop) kept.push_back(i);
  r.m = int64_t(kept.size()) + 3;
  std::vector<int32_t> rows(r.m);
  for (int64_t i = 0; i < r.m; ++i) rows[i] = int32_t(i);
  for (int64_t i = r.m - 1; i > 0; --i) std::swap(rows[i], rows[s.next_below(uint64_t(i + 1))]);
  for (size_t i = 0; i < kept.size(); ++i) r.slot[kept[i]] = rows[i];
  return r;
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) s += "_" + std::to_string(x);
  return s;
}

// ---- the table ----

void add_gemm(std::vector<OpCase>& t, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
              double alpha, double beta) {
  std::string name = std::string("gemm_") + (ta ? "t" : "n") + (tb ? "t" : "n") + dims({m, n, k}) +
                     (beta == 0 ? "_beta0" : "");
  t.push_back({name, [=](const Env& e) {
                 Tensor a = e.randn(ta ? Shape{k, m} : Shape{m, k}, "a");
                 Tensor b = e.randn(tb ? Shape{n, k} : Shape{k, n}, "b");
                 Tensor c = e.randn({m, n}, "c");
                 e.be.gemm(a, ta, b, tb, c, alpha, beta);
                 return Outputs{to_host(c)};
               }});
}

// 37 rows, 5 weight matrices: group 1 twice, two empty segments, group 4 never used, rows
// 33..36 in no segment (left untouched).
std::vector<ops::Segment> small_segments() {
  return {{0, 3, 0}, {3, 5, 1}, {5, 5, 2}, {5, 9, 1}, {9, 20, 3}, {20, 20, 0}, {20, 33, 2}};
}
// The dispatcher's layout at EP = 4 with 8 local experts: source-major, every expert once per
// source rank, uneven counts (some zero).
std::vector<ops::Segment> ep_segments(int64_t* rows) {
  std::vector<int32_t> cnt = rand_ints(32, 40, "ep_counts");
  std::vector<ops::Segment> s;
  int64_t r = 0;
  for (int src = 0; src < 4; ++src)
    for (int e = 0; e < 8; ++e) {
      const int64_t c = cnt[src * 8 + e] < 6 ? 0 : cnt[src * 8 + e];
      s.push_back({r, r + c, e});
      r += c;
    }
  *rows = r;
  return s;
}

void add_grouped(std::vector<OpCase>& t, const std::string& tag, std::vector<ops::Segment> segs,
                 int64_t rows, int64_t G, GroupedGemmMode mode) {
  const int64_t in = 24, out = 40;
  const std::string suffix = tag + (mode == GroupedGemmMode::Auto   ? "_auto"
                                    : mode == GroupedGemmMode::Loop ? "_loop"
                                                                    : "_grouped");
  t.push_back({"grouped_nt_" + suffix, [=](const Env& e) {
                 ops::gpu::GroupedModeScope mg(e.be, mode);
                 Tensor x = e.randn({rows, in}, "gx"), w = e.randn({G, out, in}, "gw");
                 Tensor y = e.randn({rows, out}, "gy");
                 e.be.grouped_gemm_nt(x, w, segs, y, 1.3);
                 return Outputs{to_host(y)};
               }});
  for (double beta : {0.0, 0.5})
    t.push_back({"grouped_nn_" + suffix + (beta == 0 ? "_beta0" : ""), [=](const Env& e) {
                   ops::gpu::GroupedModeScope mg(e.be, mode);
                   Tensor dy = e.randn({rows, out}, "gdy"), w = e.randn({G, out, in}, "gw");
                   Tensor dx = e.randn({rows, in}, "gdx");
                   e.be.grouped_gemm_nn(dy, w, segs, dx, 0.7, beta);
                   return Outputs{to_host(dx)};
                 }});
  t.push_back({"grouped_tn_" + suffix, [=](const Env& e) {
                 ops::gpu::GroupedModeScope mg(e.be, mode);
                 Tensor dy = e.randn({rows, out}, "gdy"), x = e.randn({rows, in}, "gx");
                 Tensor dw = e.randn({G, out, in}, "gdw");
                 e.be.grouped_gemm_tn(dy, x, segs, dw, 0.9);
                 return Outputs{to_host(dw)};
               }});
}

void add_elementwise(std::vector<OpCase>& t) {
  t.push_back({"fill", [](const Env& e) {
                 Tensor x = e.randn({1000}, "x");
                 e.be.fill(x, -1.25);
                 Tensor i = e.ints(rand_ints(77, 9, "fi"), {7, 11});
                 e.be.fill(i, 7);
                 return Outputs{to_host(x), to_host(i)};
               }});
  t.push_back({"axpy", [](const Env& e) {
                 Tensor x = e.randn({1003}, "x"), y = e.randn({1003}, "y");
                 e.be.axpy(x, y, 0.37);
                 return Outputs{to_host(y)};
               }});
  t.push_back({"scale", [](const Env& e) {
                 Tensor x = e.randn({999}, "x");
                 e.be.scale(x, -1.7);
                 return Outputs{to_host(x)};
               }});
  t.push_back({"sum_squares",
               [](const Env& e) {
                 Tensor x = e.randn({100003}, "x", 3.0), z = e.empty({0});
                 return Outputs{scalar(e.be.sum_squares(x)), scalar(e.be.sum_squares(z))};
               },
               true, kTolF32});
  t.push_back({"all_finite", [](const Env& e) {
                 Tensor h = moe::test::randn({5000}, DType::F32, "x");
                 std::vector<int32_t> r;
                 r.push_back(e.be.all_finite(e.in(h)));
                 h.data<float>()[1234] = INFINITY;
                 r.push_back(e.be.all_finite(e.in(h)));
                 h.data<float>()[1234] = NAN;
                 r.push_back(e.be.all_finite(e.in(h)));
                 Tensor out = Tensor::empty({3}, DType::I32);
                 std::copy(r.begin(), r.end(), out.data<int32_t>());
                 return Outputs{out};
               }});
}

void add_embedding(std::vector<OpCase>& t) {
  const int64_t n = 300, V = 50, N = 33;
  t.push_back({"embedding_forward", [=](const Env& e) {
                 Tensor ids = e.ints(rand_ints(n, V, "ids"), {n});
                 Tensor table = e.randn({V, N}, "table"), out = e.empty({n, N});
                 e.be.embedding_forward(ids, table, out, 0.6, false);
                 Tensor acc = e.randn({n, N}, "acc");
                 e.be.embedding_forward(ids, table, acc, 1.5, true);
                 return Outputs{to_host(out), to_host(acc)};
               }});
  t.push_back({"embedding_backward", [=](const Env& e) {
                 Tensor ids = e.ints(rand_ints(n, V, "ids"), {n});
                 Tensor dout = e.randn({n, N}, "dout"), dt = e.randn({V, N}, "dt");
                 e.be.embedding_backward(ids, dout, dt, 0.5);
                 return Outputs{to_host(dt)};
               }});
  t.push_back({"embedding_backward_positions", [=](const Env& e) {  // ids = i % T, as pos_embed
                 const int64_t B = 6, T = 37;
                 std::vector<int32_t> pos(B * T);
                 for (int64_t i = 0; i < B * T; ++i) pos[i] = int32_t(i % T);
                 Tensor ids = e.ints(pos, {B * T});
                 Tensor dout = e.randn({B * T, N}, "dout"), dt = e.randn({T, N}, "dt");
                 e.be.embedding_backward(ids, dout, dt, 1.0);
                 return Outputs{to_host(dt)};
               }});
}

void add_rmsnorm(std::vector<OpCase>& t, int64_t n, int64_t N) {
  t.push_back(
      {"rmsnorm" + dims({n, N}), [=](const Env& e) {
         Tensor x = e.randn({n, N}, "x", 3.0), g = e.randn({N}, "g");
         Tensor y = e.empty({n, N}), rstd = e.empty({n});
         e.be.rmsnorm_forward(x, g, y, rstd, 1e-5);
         Tensor dy = e.randn({n, N}, "dy"), dx = e.randn({n, N}, "dx"), dg = e.randn({N}, "dg");
         e.be.rmsnorm_backward(x, g, rstd, dy, dx, dg);
         return Outputs{to_host(y), to_host(rstd), to_host(dx), to_host(dg)};
       }});
}

void add_attention(std::vector<OpCase>& t, int B, int T, int H, int64_t N) {
  t.push_back(
      {"attention" + dims({B, T, H, N}), [=](const Env& e) {
         const double scale = 1.0 / std::sqrt(double(N / H));
         Tensor qkv = e.randn({int64_t(B) * T, 3 * N}, "qkv");
         Tensor out = e.empty({int64_t(B) * T, N}), probs = e.empty({B, H, T, T});
         e.be.attention_forward(qkv, out, probs, B, T, H, scale);
         Tensor dout = e.randn({int64_t(B) * T, N}, "do"), dqkv = e.empty({int64_t(B) * T, 3 * N});
         e.be.attention_backward(qkv, probs, dout, dqkv, B, T, H, scale);
         return Outputs{to_host(out), to_host(probs), to_host(dqkv)};
       }});
}

// The fused attention: its lse is f32 on both backends; out and dqkv in the case's dtype.
void add_flash_attention(std::vector<OpCase>& t, int B, int T, int H, int64_t N) {
  t.push_back(
      {"flash_attention" + dims({B, T, H, N}), [=](const Env& e) {
         const double scale = 1.0 / std::sqrt(double(N / H));
         Tensor qkv = e.randn({int64_t(B) * T, 3 * N}, "qkv");
         Tensor out = e.empty({int64_t(B) * T, N}), lse = e.empty32({B, H, T});
         e.be.flash_attention_forward(qkv, out, lse, B, T, H, scale);
         Tensor dout = e.randn({int64_t(B) * T, N}, "do"), dqkv = e.empty({int64_t(B) * T, 3 * N});
         e.be.flash_attention_backward(qkv, out, lse, dout, dqkv, B, T, H, scale);
         return Outputs{to_host(out), to_host(lse), to_host(dqkv)};
       }});
}

// QK-norm and RoPE on the q and k thirds of qkv, forward and backward (both in place where the
// model runs them so); rstd is f32 on both backends.
void add_qk_transforms(std::vector<OpCase>& t, int B, int T, int H, int64_t N) {
  t.push_back(
      {"qk_norm" + dims({B, T, H, N}), [=](const Env& e) {
         const int64_t n = int64_t(B) * T;
         Tensor qkv = e.randn({n, 3 * N}, "qkv", 2.0), out = e.empty({n, 3 * N});
         Tensor rstd = e.empty32({n, 2 * int64_t(H)});
         e.be.qk_norm_forward(qkv, out, rstd, H, 1e-5);
         Tensor d = e.randn({n, 3 * N}, "dout");
         e.be.qk_norm_backward(qkv, rstd, d, d, H);
         return Outputs{to_host(out), to_host(rstd), to_host(d)};
       }});
  t.push_back(
      {"rope" + dims({B, T, H, N}), [=](const Env& e) {
         const int64_t n = int64_t(B) * T;
         Tensor qkv = e.randn({n, 3 * N}, "qkv"), d = e.randn({n, 3 * N}, "dout");
         e.be.rope_forward(qkv, T, H, 10000.0);
         e.be.rope_backward(d, T, H, 500.0);
         return Outputs{to_host(qkv), to_host(d)};
       }});
}

// Mixed precision's crossings: cast both ways, and GEMMs writing f32 from the case's dtype.
void add_mixed(std::vector<OpCase>& t) {
  t.push_back({"cast", [](const Env& e) {
                 Tensor x = e.randn32({1003}, "x", 3.0), y = e.empty({1003}), z = e.empty32({1003});
                 e.be.cast(x, y);
                 e.be.cast(y, z);
                 return Outputs{to_host(y), to_host(z)};
               }});
  t.push_back({"gemm_to_f32", [](const Env& e) {
                 Tensor a = e.randn({37, 64}, "a"), b = e.randn({29, 64}, "b");
                 Tensor c = e.randn32({37, 29}, "c");
                 e.be.gemm(a, false, b, true, c, 0.5, 1.0);
                 return Outputs{to_host(c)};
               }});
  t.push_back({"grouped_tn_to_f32", [](const Env& e) {
                 Tensor dy = e.randn({40, 12}, "dy"), x = e.randn({40, 20}, "x");
                 Tensor dw = e.randn32({3, 12, 20}, "dw");
                 e.be.grouped_gemm_tn(dy, x, {{0, 15, 2}, {15, 15, 0}, {15, 40, 1}}, dw, 1.5);
                 return Outputs{to_host(dw)};
               }});
}

void add_activations(std::vector<OpCase>& t) {
  for (ops::Gelu form : {ops::Gelu::Erf, ops::Gelu::Tanh})
    t.push_back({form == ops::Gelu::Erf ? "gelu" : "gelu_tanh", [form](const Env& e) {
                   Tensor h = e.randn({1001}, "h", 2.0), a = e.empty({1001});
                   e.be.gelu_forward(h, a, form);
                   Tensor da = e.randn({1001}, "da"), dh = e.empty({1001});
                   e.be.gelu_backward(h, da, dh, form);
                   return Outputs{to_host(a), to_host(dh)};
                 }});
  t.push_back(
      {"swiglu", [](const Env& e) {
         Tensor g = e.randn({37, 27}, "g", 2.0), u = e.randn({37, 27}, "u");
         Tensor a = e.empty({37, 27});
         e.be.swiglu_forward(g, u, a);
         Tensor da = e.randn({37, 27}, "da"), dg = e.empty({37, 27}), du = e.empty({37, 27});
         e.be.swiglu_backward(g, u, da, dg, du);
         return Outputs{to_host(a), to_host(dg), to_host(du)};
       }});
}

struct RouterCase {
  int64_t n, M;
  int K;
  ops::Gate gate;
  bool renorm, bias, aux;
  double z;
  bool ties;  // logits (and bias) from a few values: many exact ties in the top-K
};

void add_router(std::vector<OpCase>& t, const RouterCase& rc) {
  std::string name = std::string("router") + dims({rc.n, rc.M, rc.K}) +
                     (rc.gate == ops::Gate::Softmax ? "_softmax" : "_sigmoid") +
                     (rc.renorm ? "_renorm" : "") + (rc.bias ? "_bias" : "") +
                     (rc.aux ? "_aux" : "") + (rc.z != 0 ? "_z" : "") + (rc.ties ? "_ties" : "");
  t.push_back(
      {name,
       [=](const Env& e) {
         const int64_t n = rc.n, M = rc.M, K = rc.K;
         Tensor lh = moe::test::randn({n, M}, DType::F32, "rl", 1.5);
         Tensor bh = moe::test::randn({M}, DType::F32, "rb", 0.05);
         if (rc.ties) {
           for (int64_t i = 0; i < n * M; ++i)
             lh.data<float>()[i] = float(((i / M) * 7 + (i % M) * 3) % 4) * 0.5f;
           for (int64_t j = 0; j < M; ++j) bh.data<float>()[j] = float(j % 2) * 0.25f;
         }
         ops::RouterOptions opt;
         opt.gate = rc.gate;
         opt.top_k = rc.K;
         opt.renormalize = rc.renorm;
         opt.use_bias = rc.bias;
         Tensor logits = lh.to(e.dev()), bias = rc.bias ? bh.to(e.dev()) : Tensor();
         Tensor gates = e.empty32({n, M}), w = e.empty32({n, K}), stats = e.empty32({M + 1});
         Tensor idx = Tensor::empty({n, K}, DType::I32, e.dev());
         e.be.router_forward(logits, bias, opt, gates, idx, w, stats);
         Tensor dw = e.randn32({n, K}, "rdw"), dl = e.empty32({n, M});
         Tensor coef = rc.aux ? e.randn32({M}, "rcoef") : Tensor();
         e.be.router_backward(logits, gates, idx, w, dw, coef, rc.z, opt, dl);
         return Outputs{to_host(gates), to_host(idx), to_host(w), to_host(stats), to_host(dl)};
       },
       false});
}

void add_permute(std::vector<OpCase>& t, int64_t n, int K, double drop, const std::string& tag) {
  const int64_t N = 40;
  const Slots sl = make_slots(n, K, drop, tag);
  const int64_t m = sl.m;
  t.push_back({"gather_rows_" + tag, [=](const Env& e) {
                 Tensor src = e.randn({n, N}, "src"), rows = e.ints(rand_ints(m, n, "rows"), {m});
                 Tensor dst = e.empty({m, N});
                 e.be.gather_rows(src, rows, dst);
                 return Outputs{to_host(dst)};
               }});
  t.push_back({"combine_" + tag, [=](const Env& e) {
                 Tensor y = e.randn({m, N}, "y"), w = e.randn({n, K}, "w");
                 Tensor slot = e.ints(sl.slot, {n, K}), out = e.empty({n, N});
                 e.be.combine_forward(y, slot, w, 0.8, out);
                 Tensor dout = e.randn({n, N}, "dout"), dy = e.randn({m, N}, "junk");
                 Tensor dw = e.empty({n, K});
                 e.be.combine_backward(dout, y, slot, w, 0.8, dy, dw);
                 Tensor dx = e.randn({n, N}, "dx");
                 e.be.scatter_add_slots(dy, slot, dx);
                 return Outputs{to_host(out), to_host(dy), to_host(dw), to_host(dx)};
               }});
}

void add_cross_entropy(std::vector<OpCase>& t, int64_t n, int64_t V) {
  t.push_back(
      {"cross_entropy" + dims({n, V}), [=](const Env& e) {
         Tensor logits = e.randn({n, V}, "ce", 3.0), tg = e.ints(rand_ints(n, V, "tg"), {n});
         Tensor d = e.empty({n, V});
         const double loss = e.be.cross_entropy(logits, tg, d, 0.25);
         // In place (dlogits aliases logits) with grad_scale 1, as the trainer calls it.
         const double loss2 = e.be.cross_entropy(logits, tg, logits, 1.0);
         return Outputs{scalar(loss), to_host(d), scalar(loss2), to_host(logits)};
       }});
}

void add_optimizers(std::vector<OpCase>& t) {
  t.push_back({"adamw",
               [](const Env& e) {
                 Tensor p = e.randn32({1000}, "p"), g = e.randn({1000}, "g", 0.1);
                 Tensor m = e.randn32({1000}, "m", 0.01);
                 Tensor vh = moe::test::randn({1000}, DType::F32, "v", 0.01);
                 for (int64_t i = 0; i < 1000; ++i) vh.data<float>()[i] *= vh.data<float>()[i];
                 Tensor v = vh.to(e.dev());
                 e.be.adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.1, 1);
                 e.be.adamw_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.1, 2);
                 return Outputs{to_host(p), to_host(m), to_host(v)};
               },
               true, kTolF32});
  t.push_back({"sgd",
               [](const Env& e) {
                 Tensor p = e.randn32({1000}, "p"), g = e.randn({1000}, "g", 0.1);
                 Tensor buf = e.randn32({1000}, "buf", 0.1);
                 e.be.sgd_step(p, g, buf, 0.05, 0.9, 0.01);
                 e.be.sgd_step(p, g, buf, 0.05, 0.9, 0.01);
                 return Outputs{to_host(p), to_host(buf)};
               },
               true, kTolF32});
}

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> t;
    for (bool ta : {false, true})
      for (bool tb : {false, true}) add_gemm(t, ta, tb, 37, 29, 53, 0.7, 0.3);
    add_gemm(t, false, true, 256, 384, 512, 1.0, 0.0);
    add_gemm(t, false, false, 5, 7, 0, 1.0, 0.5);  // k = 0: C = beta C
    add_gemm(t, true, false, 5, 7, 0, 1.0, 0.0);   // k = 0, beta = 0: zeros
    for (GroupedGemmMode mode :
         {GroupedGemmMode::Auto, GroupedGemmMode::Loop, GroupedGemmMode::Grouped}) {
      add_grouped(t, "small", small_segments(), 37, 5, mode);
      int64_t rows = 0;
      std::vector<ops::Segment> ep = ep_segments(&rows);
      add_grouped(t, "ep4x8", ep, rows, 8, mode);
    }
    add_grouped(t, "one", {{0, 37, 2}}, 37, 3, GroupedGemmMode::Auto);
    add_grouped(t, "all_empty", {{0, 0, 0}, {5, 5, 1}}, 37, 2, GroupedGemmMode::Grouped);
    add_elementwise(t);
    add_embedding(t);
    add_rmsnorm(t, 67, 1000);
    add_rmsnorm(t, 5, 48);
    add_attention(t, 2, 70, 3, 48);  // T = 70: not a multiple of any block size
    add_attention(t, 1, 1, 2, 8);
    add_attention(t, 3, 33, 4, 64);
    add_attention(t, 1, 130, 2, 32);
    add_flash_attention(t, 2, 70, 3, 48);   // D = 16, T not a multiple of the 32-row tiles
    add_flash_attention(t, 1, 1, 2, 8);
    add_flash_attention(t, 1, 100, 2, 256);  // D = 128, the largest head the kernel takes
    add_flash_attention(t, 2, 64, 4, 80);    // D = 20: not a multiple of 4 lanes' stride
    add_qk_transforms(t, 2, 70, 3, 48);  // D = 16
    add_qk_transforms(t, 1, 33, 2, 256);  // D = 128
    add_qk_transforms(t, 3, 5, 1, 6);     // D = 6: fewer lanes than a warp
    add_mixed(t);
    add_activations(t);
    using G = ops::Gate;
    for (G g : {G::Softmax, G::Sigmoid})
      for (bool renorm : {true, false}) {
        add_router(t, {150, 40, 3, g, renorm, false, false, 0.0, false});
        add_router(t, {150, 40, 3, g, renorm, true, true, 0.01, false});
        add_router(t, {150, 40, 3, g, renorm, true, false, 0.0, true});
      }
    add_router(t, {64, 256, 8, G::Softmax, true, false, true, 0.001, false});
    add_router(t, {97, 8, 2, G::Softmax, true, false, true, 0.001, true});
    add_router(t, {33, 5, 5, G::Sigmoid, false, false, true, 0.0, false});  // K = M
    add_router(t, {0, 8, 2, G::Softmax, true, false, false, 0.0, false});   // no tokens
    add_permute(t, 41, 3, 0.25, "dropped");
    add_permute(t, 16, 2, 0.0, "dropless");
    add_permute(t, 9, 2, 1.0, "all_dropped");
    add_cross_entropy(t, 37, 1001);
    add_cross_entropy(t, 4, 50000);
    add_optimizers(t);
    return t;
  }();
  return cases;
}

// ---- the harness ----

struct Param {
  std::string name;
  DType dt;
};

class CudaOps : public CudaTest, public ::testing::WithParamInterface<Param> {};

TEST_P(CudaOps, MatchesCpu) {
  const Param& prm = GetParam();
  const OpCase* c = nullptr;
  for (const OpCase& oc : op_cases())
    if (oc.name == prm.name) c = &oc;
  ASSERT_NE(c, nullptr);
  const Outputs ref = c->run(Env{cpu(), prm.dt});
  const Outputs got = c->run(Env{gpu(), prm.dt});
  const Outputs again = c->run(Env{gpu(), prm.dt});
  ASSERT_EQ(ref.size(), got.size());
  const double tol = prm.dt == DType::F32 ? kTolF32 : c->tol_bf16;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (ref[i].dtype() == DType::I32) {
      ASSERT_EQ(ref[i].shape(), got[i].shape()) << c->name << " output " << i;
      int64_t wrong = 0;
      for (int64_t j = 0; j < ref[i].numel(); ++j)
        wrong += ref[i].data<int32_t>()[j] != got[i].data<int32_t>()[j];
      EXPECT_EQ(wrong, 0) << c->name << " output " << i << ": integer entries differ";
    } else {
      const double err = normalized_error(got[i], ref[i]);
      std::printf("  %-44s %-4s out %zu  err %.3e  tol %.0e  %s\n", c->name.c_str(),
                  dtype_name(prm.dt), i, err, tol, err <= tol ? "OK" : "FAIL");
      EXPECT_LE(err, tol) << c->name << " output " << i << " (" << dtype_name(prm.dt) << ")";
    }
    EXPECT_TRUE(same_bits(got[i], again[i]))
        << c->name << " output " << i << ": two GPU runs differ (not deterministic)";
  }
}

std::vector<Param> params() {
  std::vector<Param> p;
  for (const OpCase& c : op_cases()) {
    p.push_back({c.name, DType::F32});
    if (c.bf16) p.push_back({c.name, DType::BF16});
  }
  return p;
}

INSTANTIATE_TEST_SUITE_P(Table, CudaOps, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return i.param.name + "_" + dtype_name(i.param.dt);
                         });

}  // namespace
}  // namespace moe::test
