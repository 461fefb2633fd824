// The backward's transposes of device quantized tensors, by the method recipe/transpose.h picks
// from the recipe's plan; each gives the CPU's result bit for bit:
//   exact          the codes and every scale grid transposed
//   scaling_aware  power-of-two 1×G groups re-expressed per G×G tile by exponent shifts
//                  (cuda/transpose.h's tiled kernel for G = 128, a two-pass kernel for other G)
//   from_source    the FP32 source, transposed, quantized by the recipe's quantizer for the
//                  transposed tensor: through shared-memory tiles for 1×128 plans (one pass) and
//                  per-row plans (a column-amax pass, then the cast), else through a transposed
//                  FP32 copy; for plans of groups of 32 or 128 in both orientations, in the same
//                  pass as the row-wise copy (quantize_both)
#pragma once

#include <cuda_runtime.h>

#include "cuda/device_quantized.h"
#include "cuda/quantize.h"
#include "cuda/quantize_plan.h"
#include "recipe/transpose.h"

namespace octet::cuda {

// out[cols, rows] = in[rows, cols] transposed, for FP8 codes (the exact method's codes).
void transpose_codes(const uint8_t* in, int64_t rows, int64_t cols, uint8_t* out,
                     cudaStream_t stream);

class Fp8Transposer {
  public:
    Fp8Transposer(Memory& memory, PlanRunner& runner)
        : runner_(runner), scratch_(memory), tiles_(memory), column_amax_(memory),
          tile_sums_(memory), tensor_amax_(memory) {}

    // out = in transposed ([cols, rows]), quantized along its new rows; `source` is the FP32
    // tensor in was quantized from (read by from_source only).
    void run(const DeviceQuantized& in, TransposeMethod method, Quantizer& requantizer,
             const float* source, DeviceQuantized& out, cudaStream_t stream);

    // The from_source method on its own: source [rows, cols] transposed, quantized by
    // `requantizer` (for callers that kept no FP8 tensor).
    void from_source(const float* source, int64_t rows, int64_t cols, Quantizer& requantizer,
                     DeviceQuantized& out, cudaStream_t stream);

    // x (FP32 or BF16 pointer, or an activation's output: quantize.h's ElementwiseSource, which
    // must fit quantizes_as_computed()) quantized by `rowwise` into `out` and, transposed, by
    // `columnwise` into `out_t` — what the plans and from_source() give — from one read of x,
    // where quantizes_both_in_one_pass() (block-wise, MX, MOSS); false, with nothing run,
    // otherwise. With `column_sums`, also adds each column's sum over the rows to
    // column_sums[col] (the bias gradient of a layer whose dy this is), in a fixed order.
    bool quantize_both(Quantizer& rowwise, Quantizer& columnwise, const float* x, int64_t rows,
                       int64_t cols, DeviceQuantized& out, DeviceQuantized& out_t,
                       cudaStream_t stream, float* column_sums = nullptr) {
        return quantize_both_from(rowwise, columnwise, x, rows, cols, out, out_t, stream,
                                  column_sums);
    }
    bool quantize_both(Quantizer& rowwise, Quantizer& columnwise, const __nv_bfloat16* x,
                       int64_t rows, int64_t cols, DeviceQuantized& out, DeviceQuantized& out_t,
                       cudaStream_t stream, float* column_sums = nullptr) {
        return quantize_both_from(rowwise, columnwise, x, rows, cols, out, out_t, stream,
                                  column_sums);
    }
    bool quantize_both(Quantizer& rowwise, Quantizer& columnwise, const ElementwiseSource& x,
                       int64_t rows, int64_t cols, DeviceQuantized& out, DeviceQuantized& out_t,
                       cudaStream_t stream, float* column_sums = nullptr) {
        return quantize_both_from(rowwise, columnwise, x, rows, cols, out, out_t, stream,
                                  column_sums);
    }

  private:
    template <typename Source>
    bool quantize_both_from(Quantizer& rowwise, Quantizer& columnwise, const Source& x,
                            int64_t rows, int64_t cols, DeviceQuantized& out,
                            DeviceQuantized& out_t, cudaStream_t stream, float* column_sums);
    void exact(const DeviceQuantized& in, DeviceQuantized& out, cudaStream_t stream);
    void scaling_aware(const DeviceQuantized& in, DeviceQuantized& out, cudaStream_t stream);

    PlanRunner& runner_;
    Buffer<float> scratch_;        // from_source: the transposed source
    Buffer<uint32_t> tiles_;       // scaling-aware: the largest scale of each tile
    Buffer<uint32_t> column_amax_; // from_source, per-row plans: each column's amax (float bits)
    Buffer<float> tile_sums_;      // quantize_both: column sums per 128 rows
    Buffer<uint32_t> tensor_amax_; // quantize_both, two-level plans: the tensor's amax (bits)
};

} // namespace octet::cuda
