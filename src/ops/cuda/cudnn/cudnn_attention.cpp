// cuDNN's fused causal attention through cudnn-frontend's graph API (cudnn_attention.h). The
// calls follow NVIDIA's samples (samples/cpp/sdpa/fp16_fwd.cpp, fp16_bwd.cpp): build the graph,
// validate, build_operation_graph, create_execution_plans({A}), check_support, build_plans,
// then execute with a variant pack of uid -> device pointer and a workspace.
#include "src/ops/cuda/cudnn/cudnn_attention.h"

#include <cudnn_frontend.h>

#include <cstdio>
#include <exception>
#include <unordered_map>
#include <vector>

#include "src/ops/cuda/cuda_util.h"
#include "src/ops/cuda/cudnn/sdpa_support.h"

namespace moe::ops::gpu {
namespace {

namespace fe = cudnn_frontend;
using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

// The variant pack's keys: the graphs' non-virtual tensors.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

// The layouts, as (B, H, T, D) views with strides in elements:
//   q, k, v (and dq, dk, dv) inside a qkv row (b T + t) of 3N: q at column h D + d, k at
//     N + h D + d, v at 2N + h D + d (the K and V pointers are offset by N and 2N);
//   out and dout, rows of N: column h D + d;
//   lse (B, H, T) f32 contiguous, which cuDNN sees as (B, H, T, 1).
struct Layout {
  int64_t B, T, H, D, N;
  std::vector<int64_t> dims() const { return {B, H, T, D}; }
  std::vector<int64_t> qkv_strides() const { return {T * 3 * N, D, 3 * N, 1}; }
  std::vector<int64_t> row_strides() const { return {T * N, D, N, 1}; }
  std::vector<int64_t> stats_dims() const { return {B, H, T, 1}; }
  std::vector<int64_t> stats_strides() const { return {H * T, T, 1, 1}; }
};

// sm_version > 0 names the GPU architecture instead of asking the device (validate_graph).
std::shared_ptr<fe::graph::Graph> new_graph(int sm_version) {
  auto g = std::make_shared<fe::graph::Graph>();
  if (sm_version > 0) g->set_sm_version(sm_version);
  // bf16 in and out; the products, the softmax and the accumulators in f32.
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

TensorPtr input(fe::graph::Graph& g, const char* name, Uid uid, std::vector<int64_t> dims,
                std::vector<int64_t> strides) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim(std::move(dims))
                      .set_stride(std::move(strides)));
}

void output(const TensorPtr& t, Uid uid, std::vector<int64_t> dims, std::vector<int64_t> strides) {
  t->set_output(true).set_uid(uid).set_dim(std::move(dims)).set_stride(std::move(strides));
}

std::shared_ptr<fe::graph::Graph> forward_graph(const Layout& l, float scale, int sm = 0) {
  auto g = new_graph(sm);
  TensorPtr q = input(*g, "Q", kQ, l.dims(), l.qkv_strides());
  TensorPtr k = input(*g, "K", kK, l.dims(), l.qkv_strides());
  TensorPtr v = input(*g, "V", kV, l.dims(), l.qkv_strides());
  // Causal: query i sees keys j <= i, the band right of the diagonal (top-left aligned, which
  // for T_q = T_kv is the usual mask) empty.
  auto opts = fe::graph::SDPA_attributes()
                  .set_name("causal_attention")
                  .set_generate_stats(true)
                  .set_attn_scale(scale)
                  .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                  .set_diagonal_band_right_bound(0);
  auto [o, stats] = g->sdpa(q, k, v, opts);
  output(o, kO, l.dims(), l.row_strides());
  output(stats, kStats, l.stats_dims(), l.stats_strides());
  stats->set_data_type(fe::DataType_t::FLOAT);
  return g;
}

std::shared_ptr<fe::graph::Graph> backward_graph(const Layout& l, float scale, int sm = 0) {
  auto g = new_graph(sm);
  TensorPtr q = input(*g, "Q", kQ, l.dims(), l.qkv_strides());
  TensorPtr k = input(*g, "K", kK, l.dims(), l.qkv_strides());
  TensorPtr v = input(*g, "V", kV, l.dims(), l.qkv_strides());
  TensorPtr o = input(*g, "O", kO, l.dims(), l.row_strides());
  TensorPtr d_o = input(*g, "dO", kDO, l.dims(), l.row_strides());
  TensorPtr stats = input(*g, "Stats", kStats, l.stats_dims(), l.stats_strides());
  stats->set_data_type(fe::DataType_t::FLOAT);
  // Deterministic: the default backward adds dQ with atomics in a run-dependent order, and
  // every op of this backend gives the same bits on every run (tests/cuda/ops_test.cpp).
  auto opts = fe::graph::SDPA_backward_attributes()
                  .set_name("causal_attention_backward")
                  .set_attn_scale(scale)
                  .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                  .set_diagonal_band_right_bound(0)
                  .set_deterministic_algorithm(true);
  auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, d_o, stats, opts);
  output(dq, kDQ, l.dims(), l.qkv_strides());
  output(dk, kDK, l.dims(), l.qkv_strides());
  output(dv, kDV, l.dims(), l.qkv_strides());
  return g;
}

// cudnn-frontend's steps from the graph to an executable plan; the first failure, with the step
// it happened at (sdpa_failure_final decides from that whether to try the shape again).
struct BuildFailure {
  SdpaStep step = SdpaStep::Validate;
  std::string error;  // empty: the graph built
};

BuildFailure build(fe::graph::Graph& g, cudnnHandle_t handle) {
  auto failed = [](SdpaStep step, const char* name, const fe::error_t& e) {
    return BuildFailure{step, detail::cat(name, ": ", e.err_msg)};
  };
  if (auto e = g.validate(); e.is_bad()) return failed(SdpaStep::Validate, "validate", e);
  if (auto e = g.build_operation_graph(handle); e.is_bad())
    return failed(SdpaStep::OperationGraph, "build_operation_graph", e);
  if (auto e = g.create_execution_plans({fe::HeurMode_t::A}); e.is_bad())
    return failed(SdpaStep::Heuristics, "create_execution_plans", e);
  if (auto e = g.check_support(); e.is_bad())
    return failed(SdpaStep::CheckSupport, "check_support", e);
  if (auto e = g.build_plans(); e.is_bad()) return failed(SdpaStep::BuildPlans, "build_plans", e);
  return {};
}

std::string status_text(cudnnStatus_t s) {
  try {
    return fe::detail::get_error_string(s);
  } catch (const std::exception&) {
    return detail::cat("status ", int(s));
  }
}

}  // namespace

struct CudnnAttention::Impl {
  cudnnHandle_t handle = nullptr;
  struct Entry {
    std::shared_ptr<fe::graph::Graph> graph;  // null: not built (yet, or for good when `final`)
    int64_t workspace = 0;                    // bytes
    std::string error;                        // the latest failure
    int tries = 0;
    bool final = false;  // cuDNN declined the shape for good (sdpa_failure_final)
  };
  std::unordered_map<SdpaKey, Entry, SdpaKeyHash> graphs;  // node-based: entries stay put

  // The cached graph of `key`, built on first use, or built again after a failure that may
  // have been transient (sdpa_failure_final).
  const Entry& graph_for(const SdpaKey& key) {
    Entry& e = graphs[key];
    if (e.graph || e.final) return e;
    ++e.tries;
    const Layout l{key.B, key.T, key.H, key.D, key.H * key.D};
    float scale;
    std::memcpy(&scale, &key.scale_bits, sizeof(scale));
    BuildFailure f;
    try {
      auto g = key.backward ? backward_graph(l, scale) : forward_graph(l, scale);
      f = build(*g, handle);
      if (f.error.empty()) {
        if (auto st = g->get_workspace_size(e.workspace); st.is_bad())
          f = {SdpaStep::Workspace, detail::cat("get_workspace_size: ", st.err_msg)};
        else
          e.graph = std::move(g);
      }
    } catch (const std::exception& ex) {  // the frontend throws for a missing cuDNN symbol
      f = {SdpaStep::Threw, ex.what()};
    }
    if (e.graph) return e;
    e.error = f.error;
    e.final = sdpa_failure_final(f.step, e.tries);
    // One line per attempt: at most kSdpaBuildTries per shape.
    std::fprintf(stderr,
                 "moe: info: cuDNN has no %s attention engine for B=%lld T=%lld H=%lld D=%lld "
                 "(%s); in Auto mode our own kernels run it%s\n",
                 key.backward ? "backward" : "forward", (long long)key.B, (long long)key.T,
                 (long long)key.H, (long long)key.D, e.error.c_str(),
                 e.final ? "" : detail::cat(" this time (attempt ", e.tries, " of ",
                                            kSdpaBuildTries, "; cuDNN is asked again)").c_str());
    return e;
  }

  void execute(const Entry& e, std::unordered_map<int64_t, void*>& pack, const char* op) {
    Tensor ws;
    void* ws_ptr = nullptr;
    if (e.workspace > 0) {  // stream-ordered, like every temporary of the backend
      ws = scratch((e.workspace + 7) / 8, DType::I64);
      ws_ptr = ws.raw();
    }
    fe::error_t st;
    try {
      st = e.graph->execute(handle, pack, ws_ptr);
    } catch (const std::exception& ex) {  // the frontend's own, as moe::Error with the op's name
      MOE_CHECK(false, op, ": cuDNN execute threw: ", ex.what());
    }
    MOE_CHECK(st.is_good(), op, ": cuDNN execute failed: ", st.err_msg);
  }
};

CudnnAttention::CudnnAttention(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  cudnnStatus_t s = fe::detail::create_handle(&impl_->handle);
  MOE_CHECK(s == CUDNN_STATUS_SUCCESS, "cudnnCreate failed: ", status_text(s));
  s = fe::detail::set_stream(impl_->handle, stream);
  if (s != CUDNN_STATUS_SUCCESS) {
    fe::detail::destroy_handle(impl_->handle);
    impl_->handle = nullptr;
    MOE_CHECK(false, "cudnnSetStream failed: ", status_text(s));
  }
}

CudnnAttention::~CudnnAttention() {
  impl_->graphs.clear();  // plans before the handle they were made with
  try {
    if (impl_->handle) fe::detail::destroy_handle(impl_->handle);
  } catch (const std::exception&) {  // never throws from a destructor
  }
}

std::string CudnnAttention::validate_graph(int B, int T, int H, int D, float scale, bool backward,
                                           int sm_version) {
  const Layout l{B, T, H, D, int64_t(H) * D};
  try {
    auto g = backward ? backward_graph(l, scale, sm_version) : forward_graph(l, scale, sm_version);
    fe::error_t e = g->validate();
    return e.is_good() ? std::string() : e.err_msg;
  } catch (const std::exception& ex) {
    return ex.what();
  }
}

bool CudnnAttention::forward(const void* qkv, void* out, float* lse, int B, int T, int H, int D,
                             float scale, std::string* why) {
  const Impl::Entry& e = impl_->graph_for(SdpaKey::of(B, T, H, D, scale, false));
  if (!e.graph) {
    if (why) *why = e.error;
    return false;
  }
  const int64_t N = int64_t(H) * D;
  auto* base = static_cast<bf16*>(const_cast<void*>(qkv));
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base}, {kK, base + N}, {kV, base + 2 * N}, {kO, out}, {kStats, lse}};
  impl_->execute(e, pack, "flash_attention_forward");
  return true;
}

bool CudnnAttention::backward(const void* qkv, const void* out, const float* lse, const void* dout,
                              void* dqkv, int B, int T, int H, int D, float scale,
                              std::string* why) {
  const Impl::Entry& e = impl_->graph_for(SdpaKey::of(B, T, H, D, scale, true));
  if (!e.graph) {
    if (why) *why = e.error;
    return false;
  }
  const int64_t N = int64_t(H) * D;
  auto* base = static_cast<bf16*>(const_cast<void*>(qkv));
  auto* dbase = static_cast<bf16*>(dqkv);
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base},
      {kK, base + N},
      {kV, base + 2 * N},
      {kO, const_cast<void*>(out)},
      {kDO, const_cast<void*>(dout)},
      {kStats, const_cast<float*>(lse)},
      {kDQ, dbase},
      {kDK, dbase + N},
      {kDV, dbase + 2 * N}};
  impl_->execute(e, pack, "flash_attention_backward");
  return true;
}

}  // namespace moe::ops::gpu
