// CPU dtype conversion (f32, f64, bf16) and the Philox parameter init.
#include "src/core/bf16.h"
#include "src/ops/cpu/cpu_backend.h"
#include "src/ops/cpu/f32_scope.h"

namespace moe::ops::cpu {
namespace {

// Element i of a float tensor as double (bf16 and f32 widen exactly).
double load(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return static_cast<const float*>(t.raw())[i];
    case DType::F64: return static_cast<const double*>(t.raw())[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(t.raw())[i]);
    default: MOE_CHECK(false, "cast: ", dtype_name(t.dtype()), " is not a float type");
  }
  return 0;
}

// f64 -> bf16 goes through f32 (as the GPU's conversions do): the double is rounded to float
// first, then to bf16.
void store(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::F32: static_cast<float*>(t.raw())[i] = static_cast<float>(v); return;
    case DType::F64: static_cast<double*>(t.raw())[i] = v; return;
    case DType::BF16: static_cast<uint16_t*>(t.raw())[i] = f32_to_bf16(static_cast<float>(v)); return;
    default: MOE_CHECK(false, "cast: ", dtype_name(t.dtype()), " is not a float type");
  }
}

}  // namespace

void cast_cpu(const Tensor& src, Tensor& dst) {
  check_cpu(src, "cast src");
  check_cpu(dst, "cast dst");
  MOE_CHECK(src.numel() == dst.numel(), "cast ", shape_str(src.shape()), " into ",
            shape_str(dst.shape()));
  const int64_t n = src.numel();
  if (src.dtype() == dst.dtype()) {
    if (src.raw() != dst.raw()) dst.copy_from(src);
    return;
  }
  if (src.dtype() == DType::F32 && dst.dtype() == DType::BF16) {  // the hot pair
    const float* s = static_cast<const float*>(src.raw());
    uint16_t* d = static_cast<uint16_t*>(dst.raw());
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(dst, i, load(src, i));
}

void CpuBackend::cast(const Tensor& src, Tensor& dst) { cast_cpu(src, dst); }

void CpuBackend::init_normal(Tensor& out, rng::Key key, int64_t per,
                             const std::vector<uint32_t>& streams, double std) {
  check_cpu(out, "init_normal out");
  MOE_CHECK(per >= 1 && out.numel() == per * int64_t(streams.size()), "init_normal: ",
            out.numel(), " elements are not ", streams.size(), " units of ", per);
  for (size_t u = 0; u < streams.size(); ++u)
    for (int64_t i = 0; i < per; ++i)
      store(out, int64_t(u) * per + i, std * rng::normal(key, uint64_t(i), streams[u]));
}

}  // namespace moe::ops::cpu
