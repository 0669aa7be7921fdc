// The instruction-set clones of the shared float row kernels.
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {

MOE_CPU_CLONES float softmax_row_f32(float* row, int64_t n) { return softmax_row(row, n); }
MOE_CPU_CLONES void softmax_backward_row_f32(const float* p, float* d, int64_t n, float scale) {
  softmax_backward_row(p, d, n, scale);
}
MOE_CPU_CLONES void axpy_row_f32(const float* x, float* y, int64_t n, float a) { axpy_row(x, y, n, a); }
MOE_CPU_CLONES float dot_row_f32(const float* x, const float* y, int64_t n) { return dot_row(x, y, n); }

}  // namespace moe::ops::cpu
