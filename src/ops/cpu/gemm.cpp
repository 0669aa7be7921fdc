// CPU GEMMs through BLAS: the dense product and the grouped expert products over row segments.
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {

void CpuBackend::gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                      double alpha, double beta) {
  if (any_bf16({&a, &b, &c})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return gemm(s.in(a), trans_a, s.in(b), trans_b, s.out(c), alpha, beta);
  }
  check_cpu(a, "gemm a");
  check_cpu(b, "gemm b");
  check_cpu(c, "gemm c");
  MOE_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, "gemm needs 2-D tensors");
  MOE_CHECK(a.dtype() == b.dtype() && b.dtype() == c.dtype(), "gemm dtypes differ");
  int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  int64_t kb = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
  MOE_CHECK(k == kb && c.dim(0) == m && c.dim(1) == n, "gemm shapes ", shape_str(a.shape()),
            trans_a ? "^T" : "", " x ", shape_str(b.shape()), trans_b ? "^T" : "", " -> ",
            shape_str(c.shape()));
  if (m == 0 || n == 0) return;
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (k == 0) {
      T* pc = c.data<T>();
      for (int64_t i = 0; i < m * n; ++i) pc[i] = beta == 0 ? T(0) : T(beta) * pc[i];
      return;
    }
    blas_gemm(trans_a, trans_b, m, n, k, T(alpha), a.data<T>(), a.dim(1), b.data<T>(), b.dim(1),
              T(beta), c.data<T>(), n);
  });
}

namespace {
void check_segments(const std::vector<Segment>& segs, int64_t rows, int64_t groups) {
  for (const Segment& s : segs)
    MOE_CHECK(0 <= s.begin && s.begin <= s.end && s.end <= rows && 0 <= s.group && s.group < groups,
              "segment [", s.begin, ", ", s.end, ") group ", s.group, " outside ", rows, " rows, ",
              groups, " groups");
}
}  // namespace

void CpuBackend::grouped_gemm_nt(const Tensor& x, const Tensor& w, const std::vector<Segment>& segs,
                                 Tensor& y, double alpha) {
  if (any_bf16({&x, &w, &y})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return grouped_gemm_nt(s.in(x), s.in(w), segs, s.out(y), alpha);
  }
  MOE_CHECK(x.ndim() == 2 && w.ndim() == 3 && y.ndim() == 2, "grouped_gemm_nt ranks");
  int64_t out = w.dim(1), in = w.dim(2);
  MOE_CHECK(x.dim(1) == in && y.dim(1) == out && x.dim(0) == y.dim(0), "grouped_gemm_nt shapes ",
            shape_str(x.shape()), " ", shape_str(w.shape()), " ", shape_str(y.shape()));
  check_segments(segs, x.dim(0), w.dim(0));
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (const Segment& s : segs) {
      if (s.end == s.begin) continue;
      blas_gemm(false, true, s.end - s.begin, out, in, T(alpha), x.data<T>() + s.begin * in, in,
                w.data<T>() + s.group * out * in, in, T(0), y.data<T>() + s.begin * out, out);
    }
  });
}

void CpuBackend::grouped_gemm_nn(const Tensor& dy, const Tensor& w, const std::vector<Segment>& segs,
                                 Tensor& dx, double alpha, double beta) {
  if (any_bf16({&dy, &w, &dx})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return grouped_gemm_nn(s.in(dy), s.in(w), segs, s.out(dx), alpha, beta);
  }
  MOE_CHECK(dy.ndim() == 2 && w.ndim() == 3 && dx.ndim() == 2, "grouped_gemm_nn ranks");
  int64_t out = w.dim(1), in = w.dim(2);
  MOE_CHECK(dy.dim(1) == out && dx.dim(1) == in && dx.dim(0) == dy.dim(0), "grouped_gemm_nn shapes");
  check_segments(segs, dy.dim(0), w.dim(0));
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (const Segment& s : segs) {
      if (s.end == s.begin) continue;
      blas_gemm(false, false, s.end - s.begin, in, out, T(alpha), dy.data<T>() + s.begin * out, out,
                w.data<T>() + s.group * out * in, in, T(beta), dx.data<T>() + s.begin * in, in);
    }
  });
}

void CpuBackend::grouped_gemm_tn(const Tensor& dy, const Tensor& x, const std::vector<Segment>& segs,
                                 Tensor& dw, double alpha) {
  if (any_bf16({&dy, &x, &dw})) {  // bf16 storage: computed in f32 (f32_scope.h)
    F32Scope s;
    return grouped_gemm_tn(s.in(dy), s.in(x), segs, s.out(dw), alpha);
  }
  MOE_CHECK(dy.ndim() == 2 && x.ndim() == 2 && dw.ndim() == 3, "grouped_gemm_tn ranks");
  int64_t out = dw.dim(1), in = dw.dim(2);
  MOE_CHECK(dy.dim(1) == out && x.dim(1) == in && x.dim(0) == dy.dim(0), "grouped_gemm_tn shapes");
  check_segments(segs, dy.dim(0), dw.dim(0));
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (const Segment& s : segs) {
      if (s.end == s.begin) continue;
      blas_gemm(true, false, out, in, s.end - s.begin, T(alpha), dy.data<T>() + s.begin * out, out,
                x.data<T>() + s.begin * in, in, T(1), dw.data<T>() + s.group * out * in, in);
    }
  });
}

}  // namespace moe::ops::cpu
