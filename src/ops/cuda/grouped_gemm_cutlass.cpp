// Whether the expert GEMMs can take CUTLASS's Hopper grouped GEMM (cutlass/grouped_gemm_sm90.h)
// on this build and GPU, and the host's part of that call: the segment table up, the
// workspace, the launch.
//
// Fits: a build with CUTLASS (MOE_HAVE_CUTLASS), a compute-capability 9.0 GPU (the kernels are
// sm_90a code), widths (in, out) multiples of 8 and 16-byte aligned tensors (TMA's rules). The
// mode and the dtypes (bf16 operands; a bf16 result for NT and NN, f32 for TN) are
// route_grouped's (grouped_gemm_route.h), and outputs that no two problems share the caller's
// (the waves see to that for TN).
#include <vector>

#include "src/ops/cuda/cuda_backend.h"
#include "src/ops/cuda/cuda_util.h"

namespace moe::ops::gpu {

bool CudaBackend::cutlass_available() const {
#ifdef MOE_HAVE_CUTLASS
  return cc_major_ == 9 && cc_minor_ == 0;
#else
  return false;
#endif
}

bool CudaBackend::cutlass_fits(const Tensor& act, const Tensor& other, const Tensor& out,
                               int64_t out_features, int64_t in_features) const {
#ifdef MOE_HAVE_CUTLASS
  if (!cutlass_available() || !sm90::shapes_supported(out_features, in_features)) return false;
  for (const Tensor* t : {&act, &other, &out})
    if (reinterpret_cast<uintptr_t>(t->raw()) % 16 != 0) return false;
  return true;
#else
  (void)act, (void)other, (void)out, (void)out_features, (void)in_features;
  return false;
#endif
}

void CudaBackend::run_cutlass(sm90::Form form, const Tensor& act, const Tensor& other, Tensor& out,
                              int64_t out_features, int64_t in_features,
                              const std::vector<Segment>& segs, float alpha, float beta) {
#ifdef MOE_HAVE_CUTLASS
  std::vector<int64_t> table;
  for (const Segment& s : segs)
    if (s.end > s.begin) table.insert(table.end(), {s.begin, s.end, int64_t(s.group)});
  const int P = int(table.size() / 3);
  if (P == 0) return;  // nothing to compute (TN: dW += 0)
  Tensor dev_table = scratch(int64_t(table.size()), DType::I64);
  upload(dev_table.raw(), table.data(), table.size() * sizeof(int64_t));
  const size_t ws_bytes = sm90::workspace_bytes(form, P, sm_count_);
  Tensor ws = scratch(int64_t((ws_bytes + 7) / 8), DType::I64);
  sm90::GroupedGemmArgs a;
  a.form = form;
  a.act = act.raw();
  a.other = other.raw();
  a.out = out.raw();
  a.out_features = out_features;
  a.in_features = in_features;
  a.alpha = alpha;
  a.beta = beta;
  a.segments = static_cast<const int64_t*>(dev_table.raw());
  a.problems = P;
  if (const char* err = sm90::run(a, ws.raw(), ws_bytes, sm_count_, stream_))
    MOE_CHECK(false, "CUTLASS grouped GEMM (", sm90::form_name(form), ", ", P, " problems, out ",
              out_features, ", in ", in_features, "): ", err);
  ++path_calls_[int(GroupedPath::Cutlass)];
#else
  (void)form, (void)act, (void)other, (void)out, (void)out_features, (void)in_features,
      (void)segs, (void)alpha, (void)beta;
  MOE_CHECK(false, "CUTLASS grouped GEMM asked for in a build without CUTLASS");
#endif
}

}  // namespace moe::ops::gpu
