// The backward's transposes of device quantized tensors, by the method recipe/transpose.h picks
// from the recipe's plan; each gives the CPU's result bit for bit:
//   exact          the codes and every scale grid transposed
//   scaling_aware  power-of-two 1×G groups re-expressed per G×G tile by exponent shifts
//                  (cuda/transpose.h's tiled kernel for G = 128, a two-pass kernel for other G)
//   naive          dequantized and requantized by the recipe's quantizer for the transposed
//                  tensor: through shared-memory tiles for 1×128 plans (one pass) and per-row
//                  plans (a column-amax pass, then the cast), else through a transposed FP32 copy
#pragma once

#include <cuda_runtime.h>

#include "cuda/device_quantized.h"
#include "cuda/quantize_plan.h"
#include "recipe/transpose.h"

namespace octet::cuda {

class Fp8Transposer {
  public:
    Fp8Transposer(Memory& memory, PlanRunner& runner)
        : runner_(runner), scratch_(memory), tiles_(memory), column_amax_(memory) {}

    // out = in transposed ([cols, rows]), quantized along its new rows.
    void run(const DeviceQuantized& in, TransposeMethod method, Quantizer& requantizer,
             DeviceQuantized& out, cudaStream_t stream);

  private:
    void exact(const DeviceQuantized& in, DeviceQuantized& out, cudaStream_t stream);
    void scaling_aware(const DeviceQuantized& in, DeviceQuantized& out, cudaStream_t stream);
    void naive(const DeviceQuantized& in, Quantizer& requantizer, DeviceQuantized& out,
               cudaStream_t stream);

    PlanRunner& runner_;
    Buffer<float> scratch_;        // naive: the dequantized transposed tensor
    Buffer<uint32_t> tiles_;       // scaling-aware: the largest scale of each tile
    Buffer<uint32_t> column_amax_; // naive, per-row plans: each column's amax (float bits)
};

} // namespace octet::cuda
