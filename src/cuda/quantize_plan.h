// The recipes' quantize plans (recipe/quantize_plan.h) run on the GPU: FP32 in, a DeviceQuantized
// out, with the codes and scales the CPU's run_plan() gives for the same input, bit for bit
// (numerics/scaling.h's rules and cast are shared, amaxes are exact maxima).
//   blocks     a scale per row: a block per row, its amax then its cast (the second read from
//              cache); 1×32 and 1×128 blocks on rows of whole float4s: one pass, a warp per 128
//              columns of a row; other blocks: pass 1 the amax of every block (atomic max of the
//              float bits, which order like the values for amax ≥ 0), pass 2 the scales by the
//              plan's rule, pass 3 the cast
//   two_level  the same with 1×G groups, plus the global scale of each coarse block of rows from
//              the groups' s_i = amax_i / fmt_max, then MOSS's local power-of-two exponents; for
//              G = 32 and 128 on rows of whole float4s, two passes (s_i and the coarse maxima,
//              then scales and cast) with one atomic per warp and coarse block
#pragma once

#include <cuda_runtime.h>

#include "cuda/device_quantized.h"
#include "recipe/quantize_plan.h"
#include "recipe/recipe.h"

namespace octet::cuda {

class PlanRunner {
  public:
    explicit PlanRunner(Memory& memory) : amax_bits_(memory), multipliers_(memory), amax_(memory) {}

    // Quantize x [rows, cols] by `plan` into `out` (its buffers resized as needed).
    void run(const float* x, int64_t rows, int64_t cols, const QuantizePlan& plan,
             DeviceQuantized& out, cudaStream_t stream);

    // The finite amax of x[0, n), on the host (waits for the stream).
    float tensor_amax(const float* x, int64_t n, cudaStream_t stream);

    // Ask `quantizer` for its plan (measuring the tensor's amax first when the quantizer needs
    // it) and run it; returns the plan.
    QuantizePlan quantize(Quantizer& quantizer, const float* x, int64_t rows, int64_t cols,
                          DeviceQuantized& out, cudaStream_t stream);

  private:
    Buffer<uint32_t> amax_bits_; // per block, then per coarse block for two-level
    Buffer<float> multipliers_;  // per block: the scale applied before the cast
    Buffer<uint32_t> amax_;      // tensor_amax()
};

} // namespace octet::cuda
