// The sm_90a translation unit behind grouped_gemm_sm90.h: three CUTLASS grouped-GEMM kernels
// (NT, NN, TN) and the kernel that builds their per-problem arguments on the device.
//
// Configuration: the cooperative persistent schedule with 128 x 256 x 64 tiles and 2 x 1 x 1
// clusters, which is what torch._grouped_mm picks on sm_90 for expert problems larger than 128
// in M and N (ours: tokens per expert and the expert widths of configs A and B); stages fill
// the shared memory the epilogue leaves. One configuration per form keeps the build within CI's
// time (each instantiation costs minutes of nvcc on 2 cores).
#include "src/ops/cuda/cutlass/grouped_gemm_sm90.h"

#include <type_traits>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"

namespace moe::ops::gpu::sm90 {
namespace {

using Shape3 = cute::Shape<int, int, int>;  // (M, N, K) of one problem
using ProblemShape = cutlass::gemm::GroupProblemShape<Shape3>;
using Bf16 = cutlass::bfloat16_t;
using RowMajor = cutlass::layout::RowMajor;
using ColumnMajor = cutlass::layout::ColumnMajor;

// A (M x K) and B (K x N) layouts in CUTLASS's terms; D (M x N) is row-major in all three forms.
template <class LayoutA, class LayoutB, class ElementD>
struct Kernel {
  using TileShape = cute::Shape<cute::_128, cute::_256, cute::_64>;
  using ClusterShape = cute::Shape<cute::_2, cute::_1, cute::_1>;
  static constexpr int kAlignAB = 16 / sizeof(Bf16);
  static constexpr int kAlignD = 16 / sizeof(ElementD);

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, ElementD, RowMajor*, kAlignD,
      ElementD, RowMajor*, kAlignD, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
      cutlass::epilogue::fusion::LinearCombination<ElementD, float>>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Bf16, LayoutA*, kAlignAB, Bf16, LayoutB*,
      kAlignAB, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using GemmKernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;
  using StrideA = typename GemmKernel::InternalStrideA;
  using StrideB = typename GemmKernel::InternalStrideB;
  using StrideD = typename GemmKernel::InternalStrideD;
};

using KernelNT = Kernel<RowMajor, ColumnMajor, Bf16>;  // x (K-major), W as K-major B
using KernelNN = Kernel<RowMajor, RowMajor, Bf16>;     // dy (K-major), W as N-major B
using KernelTN = Kernel<ColumnMajor, RowMajor, float>; // dy^T (M-major), x as N-major B

// A packed cute stride (rank 3: two modes and the batch, which is 0) has one dynamic entry:
// the leading dimension. It is the same for every problem of a call.
template <class Stride>
__host__ __device__ Stride leading(int64_t ld) {
  Stride s{};
  if constexpr (std::is_same_v<std::remove_cvref_t<decltype(cute::get<0>(s))>, int64_t>)
    cute::get<0>(s) = ld;
  else
    cute::get<1>(s) = ld;
  return s;
}

// The argument arrays in the workspace, in this order, each 256-byte aligned.
template <class K>
struct Arrays {
  Shape3* shapes;
  const Bf16** a;
  const Bf16** b;
  typename K::Gemm::ElementD** d;  // also C (beta reads the output)
  typename K::StrideA* sa;
  typename K::StrideB* sb;
  typename K::StrideD* sd;
  char* end;
};

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Lays the arrays out from `base` (nullptr: only measures); returns their total bytes.
template <class K>
size_t carve(char* base, int P, Arrays<K>* out) {
  size_t off = 0;
  Arrays<K> r{};
  auto take = [&](auto*& dst, size_t bytes) {
    dst = base ? reinterpret_cast<std::remove_reference_t<decltype(dst)>>(base + off) : nullptr;
    off += align256(bytes);
  };
  take(r.shapes, P * sizeof(Shape3));
  take(r.a, P * sizeof(void*));
  take(r.b, P * sizeof(void*));
  take(r.d, P * sizeof(void*));
  take(r.sa, P * sizeof(typename K::StrideA));
  take(r.sb, P * sizeof(typename K::StrideB));
  take(r.sd, P * sizeof(typename K::StrideD));
  r.end = base ? base + off : nullptr;
  if (out) *out = r;
  return off;
}

// Thread i turns segment i into problem i (see the header for the three forms).
template <class K>
__global__ void build_problems(Form form, const int64_t* segs, int P, const Bf16* act,
                               const Bf16* other, typename K::Gemm::ElementD* out, int64_t n_out,
                               int64_t n_in, Arrays<K> arr) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= P) return;
  const int64_t begin = segs[3 * i], end = segs[3 * i + 1], g = segs[3 * i + 2];
  const int rows = int(end - begin);
  switch (form) {
    case Form::NT:  // M rows, N out, K in
      arr.shapes[i] = Shape3{rows, int(n_out), int(n_in)};
      arr.a[i] = act + begin * n_in;
      arr.b[i] = other + g * n_out * n_in;
      arr.d[i] = out + begin * n_out;
      arr.sa[i] = leading<typename K::StrideA>(n_in);
      arr.sb[i] = leading<typename K::StrideB>(n_in);
      arr.sd[i] = leading<typename K::StrideD>(n_out);
      break;
    case Form::NN:  // M rows, N in, K out
      arr.shapes[i] = Shape3{rows, int(n_in), int(n_out)};
      arr.a[i] = act + begin * n_out;
      arr.b[i] = other + g * n_out * n_in;
      arr.d[i] = out + begin * n_in;
      arr.sa[i] = leading<typename K::StrideA>(n_out);
      arr.sb[i] = leading<typename K::StrideB>(n_in);
      arr.sd[i] = leading<typename K::StrideD>(n_in);
      break;
    case Form::TN:  // M out, N in, K rows
      arr.shapes[i] = Shape3{int(n_out), int(n_in), rows};
      arr.a[i] = act + begin * n_out;
      arr.b[i] = other + begin * n_in;
      arr.d[i] = out + g * n_out * n_in;
      arr.sa[i] = leading<typename K::StrideA>(n_out);
      arr.sb[i] = leading<typename K::StrideB>(n_in);
      arr.sd[i] = leading<typename K::StrideD>(n_in);
      break;
  }
}

template <class K>
typename K::Gemm::Arguments arguments(const Arrays<K>& arr, int P, float alpha, float beta,
                                      int sm_count) {
  typename K::Gemm::Arguments args{
      cutlass::gemm::GemmUniversalMode::kGrouped,
      {P, arr.shapes, nullptr},  // the host never sees the shapes
      {const_cast<const Bf16**>(arr.a), arr.sa, const_cast<const Bf16**>(arr.b), arr.sb},
      {{},
       const_cast<const typename K::Gemm::ElementD**>(arr.d),
       arr.sd,
       arr.d,
       arr.sd}};
  args.epilogue.thread.alpha = alpha;
  args.epilogue.thread.beta = beta;
  args.epilogue.thread.dAlpha = {cute::_0{}, cute::_0{}, 0};
  args.epilogue.thread.dBeta = {cute::_0{}, cute::_0{}, 0};
  args.hw_info.sm_count = sm_count;
  return args;
}

template <class K>
size_t bytes_for(int P, int sm_count) {
  Arrays<K> arr{};
  const size_t arrays = carve<K>(nullptr, P, &arr);
  return arrays + align256(K::Gemm::get_workspace_size(arguments<K>(arr, P, 1.f, 0.f, sm_count)));
}

template <class K>
const char* launch(const GroupedGemmArgs& a, void* ws, size_t ws_size, int sm_count,
                   cudaStream_t stream) {
  const int P = a.problems;
  Arrays<K> arr{};
  const size_t arrays = carve<K>(static_cast<char*>(ws), P, &arr);
  auto args = arguments<K>(arr, P, a.alpha, a.beta, sm_count);
  if (arrays + align256(K::Gemm::get_workspace_size(args)) > ws_size)
    return "workspace smaller than workspace_bytes()";
  constexpr int kThreads = 128;
  build_problems<K><<<(P + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      a.form, a.segments, P, static_cast<const Bf16*>(a.act), static_cast<const Bf16*>(a.other),
      static_cast<typename K::Gemm::ElementD*>(a.out), a.out_features, a.in_features, arr);
  if (cudaGetLastError() != cudaSuccess) return "launching build_problems";
  typename K::Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return "CUTLASS can_implement";
  if (gemm.initialize(args, arr.end, stream) != cutlass::Status::kSuccess)
    return "CUTLASS initialize";
  if (gemm.run(stream) != cutlass::Status::kSuccess) return "CUTLASS run";
  return nullptr;
}

}  // namespace

bool shapes_supported(int64_t out_features, int64_t in_features) {
  return out_features > 0 && in_features > 0 && out_features % 8 == 0 && in_features % 8 == 0 &&
         out_features < (int64_t(1) << 31) && in_features < (int64_t(1) << 31);
}

size_t workspace_bytes(Form form, int problems, int sm_count) {
  switch (form) {
    case Form::NT: return bytes_for<KernelNT>(problems, sm_count);
    case Form::NN: return bytes_for<KernelNN>(problems, sm_count);
    case Form::TN: return bytes_for<KernelTN>(problems, sm_count);
  }
  return 0;
}

const char* run(const GroupedGemmArgs& args, void* workspace, size_t workspace_size, int sm_count,
                cudaStream_t stream) {
  if (args.problems <= 0) return nullptr;
  switch (args.form) {
    case Form::NT: return launch<KernelNT>(args, workspace, workspace_size, sm_count, stream);
    case Form::NN: return launch<KernelNN>(args, workspace, workspace_size, sm_count, stream);
    case Form::TN: return launch<KernelTN>(args, workspace, workspace_size, sm_count, stream);
  }
  return "unknown form";
}

}  // namespace moe::ops::gpu::sm90
