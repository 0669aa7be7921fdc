// Finite-difference checks of every CPU op's backward, in double precision: for an op y = f(x)
// and a fixed random R, the loss L = <R, f(x)> must have dL/dx equal to the op's backward
// applied to R. Central differences with h = 1e-5 in f64 are accurate to ~1e-9 relative, so
// 1e-6 is a tolerance no wrong derivative passes.
#include "models/linear.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

constexpr DType F64 = DType::F64;
constexpr double kTol = 1e-6;

TEST(OpsGrad, Linear) {
  ops::Backend& be = cpu();
  Tensor x = randn({5, 4}, F64, "x"), w = randn({3, 4}, F64, "w"), R = randn({5, 3}, F64, "R");
  Tensor y = Tensor::empty({5, 3}, F64);
  auto loss = [&] {
    models::linear_forward(be, x, w, y, 0.7);
    return dot(R, y);
  };
  Tensor dx = Tensor::zeros({5, 4}, F64), dw = Tensor::zeros({3, 4}, F64);
  models::linear_backward(be, x, w, R, &dx, dw, 0.7, false);
  EXPECT_LT(grad_check(loss, x, dx), kTol);
  EXPECT_LT(grad_check(loss, w, dw), kTol);
}

TEST(OpsGrad, GroupedGemm) {
  ops::Backend& be = cpu();
  // 3 experts, 9 rows in 4 segments (expert 1 appears twice, expert 2 has an empty segment).
  std::vector<ops::Segment> segs = {{0, 3, 0}, {3, 5, 1}, {5, 5, 2}, {5, 9, 1}};
  Tensor x = randn({9, 4}, F64, "x"), w = randn({3, 5, 4}, F64, "w"), R = randn({9, 5}, F64, "R");
  Tensor y = Tensor::empty({9, 5}, F64);
  auto loss = [&] {
    be.grouped_gemm_nt(x, w, segs, y, 1.3);
    return dot(R, y);
  };
  Tensor dx = Tensor::empty({9, 4}, F64), dw = Tensor::zeros({3, 5, 4}, F64);
  be.grouped_gemm_nn(R, w, segs, dx, 1.3, 0.0);
  be.grouped_gemm_tn(R, x, segs, dw, 1.3);
  EXPECT_LT(grad_check(loss, x, dx), kTol);
  EXPECT_LT(grad_check(loss, w, dw), kTol);
  for (int64_t i = 5 * 4 * 2; i < 3 * 5 * 4; ++i) EXPECT_EQ(get(dw, i), 0.0) << "unused expert";
}

TEST(OpsGrad, Embedding) {
  ops::Backend& be = cpu();
  Tensor ids = Tensor::empty({6}, DType::I32);
  int32_t v[6] = {2, 0, 2, 4, 1, 2};
  std::copy(v, v + 6, ids.data<int32_t>());
  Tensor table = randn({5, 3}, F64, "t"), R = randn({6, 3}, F64, "R"), out = Tensor::empty({6, 3}, F64);
  auto loss = [&] {
    be.embedding_forward(ids, table, out, 0.5, false);
    return dot(R, out);
  };
  Tensor dt = Tensor::zeros({5, 3}, F64);
  be.embedding_backward(ids, R, dt, 0.5);
  EXPECT_LT(grad_check(loss, table, dt), kTol);
}

TEST(OpsGrad, RmsNorm) {
  ops::Backend& be = cpu();
  Tensor x = randn({4, 7}, F64, "x"), g = randn({7}, F64, "g"), R = randn({4, 7}, F64, "R");
  Tensor y = Tensor::empty({4, 7}, F64), rstd = Tensor::empty({4}, F64);
  auto loss = [&] {
    be.rmsnorm_forward(x, g, y, rstd, 1e-5);
    return dot(R, y);
  };
  loss();
  Tensor dx = Tensor::zeros({4, 7}, F64), dg = Tensor::zeros({7}, F64);
  be.rmsnorm_backward(x, g, rstd, R, dx, dg);
  EXPECT_LT(grad_check(loss, x, dx), kTol);
  EXPECT_LT(grad_check(loss, g, dg), kTol);
}

TEST(OpsGrad, Attention) {
  ops::Backend& be = cpu();
  const int B = 2, T = 5, H = 2, N = 6;
  Tensor qkv = randn({B * T, 3 * N}, F64, "qkv"), R = randn({B * T, N}, F64, "R");
  Tensor out = Tensor::empty({B * T, N}, F64), probs = Tensor::empty({B, H, T, T}, F64);
  auto loss = [&] {
    be.attention_forward(qkv, out, probs, B, T, H, 0.6);
    return dot(R, out);
  };
  loss();
  Tensor dqkv = Tensor::empty({B * T, 3 * N}, F64);
  be.attention_backward(qkv, probs, R, dqkv, B, T, H, 0.6);
  EXPECT_LT(grad_check(loss, qkv, dqkv, 1000), kTol);
  // causality: the first output row of each sequence depends on its own token only
  Tensor y0 = out.clone();
  set(qkv, (T - 1) * 3 * N + 2 * N, 5.0);  // change v of the last token of sequence 0
  be.attention_forward(qkv, out, probs, B, T, H, 0.6);
  for (int j = 0; j < N; ++j) EXPECT_EQ(get(out, j), get(y0, j));
}

// Longer than the CPU kernel's 32-query row blocks, with a partial last block.
TEST(OpsGrad, AttentionBlocked) {
  ops::Backend& be = cpu();
  const int B = 1, T = 70, H = 2, N = 4;
  Tensor qkv = randn({B * T, 3 * N}, F64, "qkv70"), R = randn({B * T, N}, F64, "R70");
  Tensor out = Tensor::empty({B * T, N}, F64), probs = Tensor::empty({B, H, T, T}, F64);
  auto loss = [&] {
    be.attention_forward(qkv, out, probs, B, T, H, 0.9);
    return dot(R, out);
  };
  loss();
  Tensor dqkv = Tensor::empty({B * T, 3 * N}, F64);
  be.attention_backward(qkv, probs, R, dqkv, B, T, H, 0.9);
  // h = 1e-4: this loss sums 280 outputs, so the rounding noise of smaller steps would dominate;
  // the O(h^2) truncation error stays far below the tolerance.
  EXPECT_LT(grad_check(loss, qkv, dqkv, 400, 1e-4), kTol);
  for (int i = 0; i < T; ++i)  // each probability row is a distribution over keys 0..i
    for (int h = 0; h < H; ++h) {
      double s = 0;
      for (int j = 0; j < T; ++j) {
        double v = get(probs, (int64_t(h) * T + i) * T + j);
        if (j > i) EXPECT_EQ(v, 0.0);
        s += v;
      }
      EXPECT_NEAR(s, 1.0, 1e-12);
    }
}

TEST(OpsGrad, QkNorm) {
  ops::Backend& be = cpu();
  const int H = 3;
  const int64_t n = 4, N = 12;
  Tensor qkv = randn({n, 3 * N}, F64, "qkv_n", 1.5), R = randn({n, 3 * N}, F64, "R_n");
  Tensor out = Tensor::empty({n, 3 * N}, F64), rstd = Tensor::empty({n, 2 * H}, F64);
  auto loss = [&] {
    be.qk_norm_forward(qkv, out, rstd, H, 1e-5);
    return dot(R, out);
  };
  loss();
  for (int64_t r = 0; r < n; ++r)  // each q and k head has unit RMS (up to eps); v is copied
    for (int h = 0; h < 2 * H; ++h) {
      double ss = 0;
      for (int64_t d = 0; d < N / H; ++d) ss += std::pow(get(out, r * 3 * N + h * (N / H) + d), 2);
      EXPECT_NEAR(ss / double(N / H), 1.0, 1e-3);
    }
  for (int64_t j = 2 * N; j < 3 * N; ++j) EXPECT_EQ(get(out, j), get(qkv, j));
  Tensor dqkv = R.clone();  // in place, as the model runs it
  be.qk_norm_backward(qkv, rstd, dqkv, dqkv, H);
  EXPECT_LT(grad_check(loss, qkv, dqkv, 200), kTol);
}

TEST(OpsGrad, Rope) {
  ops::Backend& be = cpu();
  const int B = 2, T = 5, H = 2;
  const int64_t n = B * T, N = 8;
  Tensor x = randn({n, 3 * N}, F64, "qkv_r"), R = randn({n, 3 * N}, F64, "R_r");
  Tensor y = Tensor::empty({n, 3 * N}, F64);
  auto loss = [&] {
    y.copy_from(x);
    be.rope_forward(y, T, H, 100.0);
    return dot(R, y);
  };
  loss();
  // Position 0 is not rotated; position 1 rotates pair (0, D/2) of each head by 1 radian.
  const int64_t D = N / H;
  for (int64_t j = 0; j < 3 * N; ++j) EXPECT_DOUBLE_EQ(get(y, j), get(x, j));
  const int64_t r1 = 3 * N;
  EXPECT_NEAR(get(y, r1), get(x, r1) * std::cos(1.0) - get(x, r1 + D / 2) * std::sin(1.0), 1e-12);
  EXPECT_NEAR(get(y, r1 + D / 2), get(x, r1 + D / 2) * std::cos(1.0) + get(x, r1) * std::sin(1.0), 1e-12);
  for (int64_t j = 2 * N; j < 3 * N; ++j) EXPECT_EQ(get(y, r1 + j), get(x, r1 + j)) << "v untouched";
  Tensor dx = R.clone();
  be.rope_backward(dx, T, H, 100.0);
  EXPECT_LT(grad_check(loss, x, dx, 200), kTol);
  // A rotation keeps norms and relative positions: q_i . k_j depends on i - j only.
  Tensor a = Tensor::zeros({n, 3 * N}, F64);
  for (int64_t r = 0; r < n; ++r) {
    set(a, r * 3 * N + 1, 1.0);      // q head 0 = e_1 at every position
    set(a, r * 3 * N + N + 1, 1.0);  // k head 0 = e_1 + e_2 (both pairs)
    set(a, r * 3 * N + N + 2, 1.0);
  }
  be.rope_forward(a, T, H, 100.0);
  auto qk = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += get(a, i * 3 * N + d) * get(a, j * 3 * N + N + d);
    return s;
  };
  EXPECT_NEAR(qk(3, 1), qk(4, 2), 1e-12);
  EXPECT_NEAR(qk(2, 2), 1.0, 1e-12);
  EXPECT_GT(std::abs(qk(3, 1) - qk(3, 2)), 1e-3);
}

TEST(OpsGrad, Gelu) {
  ops::Backend& be = cpu();
  for (ops::Gelu form : {ops::Gelu::Erf, ops::Gelu::Tanh}) {
    SCOPED_TRACE(form == ops::Gelu::Erf ? "erf" : "tanh");
    Tensor h = randn({3, 8}, F64, "h", 2.0), R = randn({3, 8}, F64, "R"), a = Tensor::empty({3, 8}, F64);
    auto loss = [&] {
      be.gelu_forward(h, a, form);
      return dot(R, a);
    };
    Tensor dh = Tensor::empty({3, 8}, F64);
    be.gelu_backward(h, R, dh, form);
    EXPECT_LT(grad_check(loss, h, dh), kTol);
    Tensor z = Tensor::zeros({1}, F64), az = Tensor::empty({1}, F64);
    be.gelu_forward(z, az, form);
    EXPECT_EQ(get(az, 0), 0.0);
  }
}

// The two GELU forms against their definitions written with libm, on a grid over [-10, 10]: the
// f64 kernels to rounding, the f32 kernels within their bounds (the exact form's polynomial erf:
// the 5e-7 src/ops/cpu/activation.cpp states; the tanh form's derivative loses a little more
// in 1 - tanh^2); and the forms differ by the ~4.7e-4 that separates them, so that a swapped
// form cannot pass.
TEST(OpsGrad, GeluFormsMatchTheirDefinitions) {
  ops::Backend& be = cpu();
  const int64_t n = 200001;
  // The grid in f32, and the same values in f64 (so that both kernels see the same inputs).
  Tensor x64 = Tensor::empty({n}, F64), x32 = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i) {
    set(x32, i, -10.0 + 20.0 * double(i) / double(n - 1));
    set(x64, i, get(x32, i));
  }
  const auto exact = [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const auto exact_d = [](double x) {
    return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
  };
  const double c = std::sqrt(2.0 / M_PI);
  const auto tanh_form = [c](double x) { return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x))); };
  const auto tanh_d = [c](double x) {
    const double th = std::tanh(c * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * c * (1.0 + 3 * 0.044715 * x * x);
  };
  struct Form {
    ops::Gelu form;
    std::function<double(double)> f, d;
    double tol_d32;
  };
  for (const Form& fm : {Form{ops::Gelu::Erf, exact, exact_d, 5e-7}, Form{ops::Gelu::Tanh, tanh_form, tanh_d, 3e-6}}) {
    SCOPED_TRACE(fm.form == ops::Gelu::Erf ? "erf" : "tanh");
    Tensor ones64 = Tensor::empty({n}, F64), ones32 = Tensor::empty({n}, DType::F32);
    for (int64_t i = 0; i < n; ++i) {
      set(ones64, i, 1.0);
      set(ones32, i, 1.0);
    }
    Tensor a64 = Tensor::empty({n}, F64), d64 = Tensor::empty({n}, F64);
    Tensor a32 = Tensor::empty({n}, DType::F32), d32 = Tensor::empty({n}, DType::F32);
    be.gelu_forward(x64, a64, fm.form);
    be.gelu_backward(x64, ones64, d64, fm.form);
    be.gelu_forward(x32, a32, fm.form);
    be.gelu_backward(x32, ones32, d32, fm.form);
    double e64 = 0, e32 = 0, de64 = 0, de32 = 0, other = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = get(x64, i);
      e64 = std::max(e64, std::abs(get(a64, i) - fm.f(x)));
      de64 = std::max(de64, std::abs(get(d64, i) - fm.d(x)));
      e32 = std::max(e32, std::abs(get(a32, i) - fm.f(x)));
      de32 = std::max(de32, std::abs(get(d32, i) - fm.d(x)));
      other = std::max(other, std::abs(fm.f(x) - (fm.form == ops::Gelu::Erf ? tanh_form(x) : exact(x))));
    }
    EXPECT_LT(e64, 1e-14);
    EXPECT_LT(de64, 1e-14);
    EXPECT_LT(e32, 5e-7);
    EXPECT_LT(de32, fm.tol_d32);
    EXPECT_GT(other, 4e-4);
  }
}

TEST(OpsGrad, SwiGlu) {
  ops::Backend& be = cpu();
  Tensor g = randn({3, 5}, F64, "g", 2.0), u = randn({3, 5}, F64, "u"), R = randn({3, 5}, F64, "R");
  Tensor a = Tensor::empty({3, 5}, F64);
  auto loss = [&] {
    be.swiglu_forward(g, u, a);
    return dot(R, a);
  };
  Tensor dg = Tensor::empty({3, 5}, F64), du = Tensor::empty({3, 5}, F64);
  be.swiglu_backward(g, u, R, dg, du);
  EXPECT_LT(grad_check(loss, g, dg), kTol);
  EXPECT_LT(grad_check(loss, u, du), kTol);
}

TEST(OpsGrad, CrossEntropy) {
  ops::Backend& be = cpu();
  Tensor logits = randn({4, 9}, F64, "l", 2.0), tg = Tensor::empty({4}, DType::I32);
  int32_t t[4] = {0, 8, 3, 3};
  std::copy(t, t + 4, tg.data<int32_t>());
  Tensor scratch = Tensor::empty({4, 9}, F64);
  auto loss = [&] { return be.cross_entropy(logits, tg, scratch, 0.25) * 0.25; };
  Tensor d = Tensor::empty({4, 9}, F64);
  be.cross_entropy(logits, tg, d, 0.25);
  EXPECT_LT(grad_check(loss, logits, d), kTol);
  // value: -log softmax at the target
  Tensor one = randn({1, 9}, F64, "one"), tg1 = Tensor::empty({1}, DType::I32), s1 = Tensor::empty({1, 9}, F64);
  tg1.data<int32_t>()[0] = 4;
  double mx = -1e9, z = 0;
  for (int j = 0; j < 9; ++j) mx = std::max(mx, get(one, j));
  for (int j = 0; j < 9; ++j) z += std::exp(get(one, j) - mx);
  EXPECT_NEAR(be.cross_entropy(one, tg1, s1, 1.0), mx + std::log(z) - get(one, 4), 1e-12);
}

// Router: L = <Rw, w> + <aux, p-sum> + z * sum lse^2, differentiated through the gate.
void check_router(ops::Gate gate, bool renorm, bool aux, double z) {
  ops::Backend& be = cpu();
  const int64_t n = 5, M = 6;
  ops::RouterOptions opt;
  opt.gate = gate;
  opt.top_k = 3;
  opt.renormalize = renorm;
  Tensor logits = randn({n, M}, F64, "logits", 1.5), Rw = randn({n, 3}, F64, "Rw");
  Tensor coef = aux ? randn({M}, F64, "coef") : Tensor();
  Tensor gates = Tensor::empty({n, M}, F64), idx = Tensor::empty({n, 3}, DType::I32);
  Tensor w = Tensor::empty({n, 3}, F64), stats = Tensor::empty({M + 1}, F64), none;
  auto loss = [&] {
    be.router_forward(logits, none, opt, gates, idx, w, stats);
    double l = dot(Rw, w) + z * get(stats, M);
    if (aux) {  // stats[0..M) = sum_t p_t
      for (int64_t i = 0; i < M; ++i) l += get(coef, i) * get(stats, i);
    }
    return l;
  };
  loss();
  Tensor dl = Tensor::empty({n, M}, F64);
  be.router_backward(logits, gates, idx, w, Rw, coef, z, opt, dl);
  EXPECT_LT(grad_check(loss, logits, dl, 1000), kTol)
      << "gate " << int(gate) << " renorm " << renorm << " aux " << aux << " z " << z;
}

TEST(OpsGrad, Router) {
  for (ops::Gate g : {ops::Gate::Softmax, ops::Gate::Sigmoid})
    for (bool renorm : {true, false})
      for (bool aux : {false, true}) check_router(g, renorm, aux, aux ? 0.3 : 0.0);
}

TEST(OpsGrad, CombineAndScatter) {
  ops::Backend& be = cpu();
  const int64_t n = 4, K = 2, m = 7, N = 3;
  Tensor slot = Tensor::empty({n, K}, DType::I32);
  int32_t s[8] = {0, 3, 1, -1, 6, 2, 5, 4};  // one dropped assignment, row m... all used once
  std::copy(s, s + 8, slot.data<int32_t>());
  Tensor y = randn({m, N}, F64, "y"), w = randn({n, K}, F64, "w"), R = randn({n, N}, F64, "R");
  Tensor out = Tensor::empty({n, N}, F64);
  auto loss = [&] {
    be.combine_forward(y, slot, w, 0.5, out);
    return dot(R, out);
  };
  Tensor dy = Tensor::empty({m, N}, F64), dw = Tensor::empty({n, K}, F64);
  be.combine_backward(R, y, slot, w, 0.5, dy, dw);
  EXPECT_LT(grad_check(loss, y, dy), kTol);
  EXPECT_LT(grad_check(loss, w, dw), kTol);
  EXPECT_EQ(get(dw, 3), 0.0);  // dropped
  // scatter_add_slots is the adjoint of gathering rows by slot
  Tensor x = randn({n, N}, F64, "x"), rows = Tensor::empty({m}, DType::I32);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < K; ++k)
      if (s[t * K + k] >= 0) rows.data<int32_t>()[s[t * K + k]] = int32_t(t);
  Tensor g = Tensor::empty({m, N}, F64), Rg = randn({m, N}, F64, "Rg");
  auto gloss = [&] {
    be.gather_rows(x, rows, g);
    return dot(Rg, g);
  };
  Tensor dx = Tensor::zeros({n, N}, F64);
  be.scatter_add_slots(Rg, slot, dx);
  EXPECT_LT(grad_check(gloss, x, dx), kTol);
}

}  // namespace
}  // namespace moe::test
