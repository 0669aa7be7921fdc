// The instruction-set clones of the shared float row kernels.
#include "src/ops/cpu/fast_math.h"

namespace moe::ops::cpu {

MOE_CPU_CLONES float softmax_row_f32(float* row, int64_t n) { return softmax_row(row, n); }

}  // namespace moe::ops::cpu
