// The grouped expert GEMMs over row segments (segment s uses weight matrix W[group]).
//
// Each call takes one of three paths, chosen per call by route_grouped (grouped_gemm_route.h):
// CUTLASS's Hopper grouped GEMM (grouped_gemm_cutlass.cpp), the fast path for bf16 on an sm_90
// GPU; cublasGemmGroupedBatchedEx, which runs every segment's GEMM (each of a different row
// count) from one call, where a loop of cublasGemmEx pays a launch and a small, under-filled
// GEMM per expert (on uneven expert loads the grouped call measured 1.2-4.7x the loop on an
// H100, docs/gpu-machine.md, except for few, large experts); or that loop, for one or two
// problems, for dtypes the grouped call does not take (bf16 operands with an f32 result: the
// weight gradient under mixed precision, where CUTLASS does not run), and for segments whose
// outputs overlap (the same rows of y or dx, which the dispatcher never produces), which it
// runs in order like the CPU. grouped_gemm_tn accumulates into dW[g], and several segments may
// share a group (one per source rank): it then runs in waves, wave w holding the w-th segment
// of each group, so no two problems of one call write the same dW[g] and each dW[g] still adds
// its segments in order.
#include <algorithm>
#include <numeric>
#include <utility>

#include "src/ops/cuda/cuda_backend.h"
#include "src/ops/cuda/cuda_util.h"
#include "src/ops/cuda/gemm_rm.h"

namespace moe::ops::gpu {
namespace {

void check_segments(const std::vector<Segment>& segs, int64_t rows, int64_t groups) {
  for (const Segment& s : segs)
    MOE_CHECK(0 <= s.begin && s.begin <= s.end && s.end <= rows && 0 <= s.group && s.group < groups,
              "segment [", s.begin, ", ", s.end, ") group ", s.group, " outside ", rows, " rows, ",
              groups, " groups");
}

// True when two non-empty segments share a row (their outputs would overlap).
bool rows_overlap(const std::vector<Segment>& segs) {
  std::vector<std::pair<int64_t, int64_t>> r;
  for (const Segment& s : segs)
    if (s.end > s.begin) r.push_back({s.begin, s.end});
  std::sort(r.begin(), r.end());
  for (size_t i = 1; i < r.size(); ++i)
    if (r[i].first < r[i - 1].second) return true;
  return false;
}

void check_grouped_args(const Tensor& a, const Tensor& w, const Tensor& out, const char* op) {
  check_dev(a, op);
  check_dev(w, op);
  check_dev(out, op);
  check_float(a, op);
  // bf16 operands may write an f32 result (mixed precision: f32 gradients), nothing else mixes.
  MOE_CHECK(a.dtype() == w.dtype() && (w.dtype() == out.dtype() || out.dtype() == DType::F32), op,
            ": dtypes differ (",
            dtype_name(a.dtype()), ", ", dtype_name(w.dtype()), ", ", dtype_name(out.dtype()), ")");
}

}  // namespace

GroupedPath CudaBackend::grouped_route(const char* op, bool weight_grad, const Tensor& act,
                                       const Tensor& other, const Tensor& out,
                                       int64_t out_features, int64_t in_features, bool independent,
                                       size_t problems) const {
  GroupedCall c;
  c.mode = grouped_mode_;
  c.operands = act.dtype();
  c.out = out.dtype();
  c.weight_grad = weight_grad;
  c.cutlass_fits = cutlass_fits(act, other, out, out_features, in_features);
  c.independent = independent;
  c.problems = problems;
  c.cublas_refused = std::find(cublas_refused_.begin(), cublas_refused_.end(),
                               std::pair{c.operands, c.out}) != cublas_refused_.end();
  GroupedRoute r = route_grouped(c);
  MOE_CHECK(r.refused.empty(), op, ": ", r.refused);
  return r.path;
}

void CudaBackend::run_gemm_problems(const std::vector<GemmProblem>& probs, DType dt, DType dt_c,
                                    float alpha, float beta, GroupedPath path) {
  if (probs.empty()) return;
  const cudaDataType_t t = cuda_type(dt), tc = cuda_type(dt_c);
  if (path == GroupedPath::CublasGrouped) {
    // Column-major form of each row-major problem (see gemm_rm.h): operands swapped.
    const size_t P = probs.size();
    std::vector<cublasOperation_t> op_a(P), op_b(P);
    std::vector<int> m(P), n(P), k(P), lda(P), ldb(P), ldc(P), group_size(P, 1);
    std::vector<float> alphas(P, alpha), betas(P, beta);
    std::vector<const void*> ptrs(3 * P);
    for (size_t i = 0; i < P; ++i) {
      const GemmProblem& q = probs[i];
      op_a[i] = q.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
      op_b[i] = q.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
      m[i] = as_int(q.n, "grouped gemm n");
      n[i] = as_int(q.m, "grouped gemm m");
      k[i] = as_int(q.k, "grouped gemm k");
      lda[i] = as_int(q.ldb, "grouped gemm ldb");
      ldb[i] = as_int(q.lda, "grouped gemm lda");
      ldc[i] = as_int(q.ldc, "grouped gemm ldc");
      ptrs[i] = q.b;
      ptrs[P + i] = q.a;
      ptrs[2 * P + i] = q.c;
    }
    // The pointer arrays live in device memory; the rest of the description is read on the host.
    Tensor dev_ptrs = scratch(int64_t(3 * P), DType::I64);
    upload(dev_ptrs.raw(), ptrs.data(), 3 * P * sizeof(void*));
    const void* const* d = static_cast<const void* const*>(dev_ptrs.raw());
    cublasStatus_t st = cublasGemmGroupedBatchedEx(
        cublas_, op_a.data(), op_b.data(), m.data(), n.data(), k.data(), alphas.data(), d, t,
        lda.data(), d + P, t, ldb.data(), betas.data(), const_cast<void* const*>(d + 2 * P), tc,
        ldc.data(), int(P), group_size.data(), CUBLAS_COMPUTE_32F);
    if (st == CUBLAS_STATUS_SUCCESS) {
      ++path_calls_[int(GroupedPath::CublasGrouped)];
      return;
    }
    if (st != CUBLAS_STATUS_NOT_SUPPORTED || grouped_mode_ == GroupedGemmMode::Grouped)
      throw_cublas(st, "cublasGemmGroupedBatchedEx", __FILE__, __LINE__);
    // Auto: this dtype pair takes the loop from now on; the others keep the grouped call.
    cublas_refused_.push_back({dt, dt_c});
  }
  for (const GemmProblem& q : probs)
    gemm_rm(cublas_, q.ta, q.tb, q.m, q.n, q.k, alpha, Mat{q.a, t, q.lda}, Mat{q.b, t, q.ldb}, beta,
            Mat{q.c, tc, q.ldc});
  ++path_calls_[int(GroupedPath::Loop)];
}

void CudaBackend::grouped_gemm_nt(const Tensor& x, const Tensor& w,
                                  const std::vector<Segment>& segs, Tensor& y, double alpha) {
  MOE_CHECK(x.ndim() == 2 && w.ndim() == 3 && y.ndim() == 2, "grouped_gemm_nt ranks");
  check_grouped_args(x, w, y, "grouped_gemm_nt");
  const int64_t out = w.dim(1), in = w.dim(2);
  MOE_CHECK(x.dim(1) == in && y.dim(1) == out && x.dim(0) == y.dim(0), "grouped_gemm_nt shapes ",
            shape_str(x.shape()), " ", shape_str(w.shape()), " ", shape_str(y.shape()));
  check_segments(segs, x.dim(0), w.dim(0));
  const size_t es = dtype_size(x.dtype()), esc = dtype_size(y.dtype());
  const char *px = static_cast<const char*>(x.raw()), *pw = static_cast<const char*>(w.raw());
  char* py = static_cast<char*>(y.raw());
  std::vector<GemmProblem> probs;
  for (const Segment& s : segs) {
    if (s.end == s.begin || out == 0) continue;
    const int64_t rows = s.end - s.begin;
    if (in == 0) {  // y[s] = 0 (an empty sum), as the CPU's BLAS call with k = 0
      Tensor ys = y.rows(s.begin, s.end);
      fill(ys, 0.0);
      continue;
    }
    // y[s] (rows x out) = alpha x[s] (rows x in) W[g]^T
    probs.push_back({false, true, rows, out, in, px + s.begin * in * es, in,
                     pw + s.group * out * in * es, in, py + s.begin * out * esc, out});
  }
  const bool independent = !rows_overlap(segs);
  const GroupedPath path =
      grouped_route("grouped_gemm_nt", false, x, w, y, out, in, independent, probs.size());
  if (path == GroupedPath::Cutlass)
    run_cutlass(sm90::Form::NT, x, w, y, out, in, segs, float(alpha), 0.0f);
  else
    run_gemm_problems(probs, x.dtype(), y.dtype(), float(alpha), 0.0f, path);
}

void CudaBackend::grouped_gemm_nn(const Tensor& dy, const Tensor& w,
                                  const std::vector<Segment>& segs, Tensor& dx, double alpha,
                                  double beta) {
  MOE_CHECK(dy.ndim() == 2 && w.ndim() == 3 && dx.ndim() == 2, "grouped_gemm_nn ranks");
  check_grouped_args(dy, w, dx, "grouped_gemm_nn");
  const int64_t out = w.dim(1), in = w.dim(2);
  MOE_CHECK(dy.dim(1) == out && dx.dim(1) == in && dx.dim(0) == dy.dim(0),
            "grouped_gemm_nn shapes ", shape_str(dy.shape()), " ", shape_str(w.shape()), " ",
            shape_str(dx.shape()));
  check_segments(segs, dy.dim(0), w.dim(0));
  const size_t es = dtype_size(dy.dtype()), esc = dtype_size(dx.dtype());
  const char *pdy = static_cast<const char*>(dy.raw()), *pw = static_cast<const char*>(w.raw());
  char* pdx = static_cast<char*>(dx.raw());
  std::vector<GemmProblem> probs;
  for (const Segment& s : segs) {
    if (s.end == s.begin || in == 0) continue;
    const int64_t rows = s.end - s.begin;
    if (out == 0) {  // dx[s] = beta dx[s]
      Tensor ds = dx.rows(s.begin, s.end);
      if (beta == 0)
        fill(ds, 0.0);
      else
        scale(ds, beta);
      continue;
    }
    // dx[s] (rows x in) = alpha dy[s] (rows x out) W[g] (out x in) + beta dx[s]
    probs.push_back({false, false, rows, in, out, pdy + s.begin * out * es, out,
                     pw + s.group * out * in * es, in, pdx + s.begin * in * esc, in});
  }
  const bool independent = !rows_overlap(segs);
  const GroupedPath path =
      grouped_route("grouped_gemm_nn", false, dy, w, dx, out, in, independent, probs.size());
  if (path == GroupedPath::Cutlass)
    run_cutlass(sm90::Form::NN, dy, w, dx, out, in, segs, float(alpha), float(beta));
  else
    run_gemm_problems(probs, dy.dtype(), dx.dtype(), float(alpha), float(beta), path);
}

void CudaBackend::grouped_gemm_tn(const Tensor& dy, const Tensor& x,
                                  const std::vector<Segment>& segs, Tensor& dw, double alpha) {
  MOE_CHECK(dy.ndim() == 2 && x.ndim() == 2 && dw.ndim() == 3, "grouped_gemm_tn ranks");
  check_grouped_args(dy, x, dw, "grouped_gemm_tn");
  const int64_t out = dw.dim(1), in = dw.dim(2);
  MOE_CHECK(dy.dim(1) == out && x.dim(1) == in && x.dim(0) == dy.dim(0), "grouped_gemm_tn shapes ",
            shape_str(dy.shape()), " ", shape_str(x.shape()), " ", shape_str(dw.shape()));
  check_segments(segs, dy.dim(0), dw.dim(0));
  if (out == 0 || in == 0) return;
  const size_t es = dtype_size(dy.dtype()), esc = dtype_size(dw.dtype());
  const char *pdy = static_cast<const char*>(dy.raw()), *px = static_cast<const char*>(x.raw());
  char* pdw = static_cast<char*>(dw.raw());
  // dW[g] (out x in) += alpha dy[s]^T (out x rows) x[s] (rows x in)
  auto problem = [&](const Segment& s) {
    return GemmProblem{true,
                       false,
                       out,
                       in,
                       s.end - s.begin,
                       pdy + s.begin * out * es,
                       out,
                       px + s.begin * in * es,
                       in,
                       pdw + s.group * out * in * esc,
                       in};
  };
  // Waves: the w-th non-empty segment of every group goes into wave w.
  std::vector<std::vector<Segment>> waves;
  std::vector<size_t> seen(size_t(dw.dim(0)), 0);
  for (const Segment& s : segs) {
    if (s.end == s.begin) continue;
    size_t wv = seen[size_t(s.group)]++;
    if (wv == waves.size()) waves.emplace_back();
    waves[wv].push_back(s);
  }
  for (const auto& wave : waves) {
    const GroupedPath path =
        grouped_route("grouped_gemm_tn", true, dy, x, dw, out, in, true, wave.size());
    if (path == GroupedPath::Cutlass) {
      run_cutlass(sm90::Form::TN, dy, x, dw, out, in, wave, float(alpha), 1.0f);
      continue;
    }
    std::vector<GemmProblem> probs;
    for (const Segment& s : wave) probs.push_back(problem(s));
    run_gemm_problems(probs, dy.dtype(), dw.dtype(), float(alpha), 1.0f, path);
  }
}

}  // namespace moe::ops::gpu
