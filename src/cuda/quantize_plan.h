// The recipes' quantize plans (recipe/quantize_plan.h) run on the GPU: FP32 in, a DeviceQuantized
// out, with the codes and scales the CPU's run_plan() gives for the same input, bit for bit
// (numerics/scaling.h's rules and cast are shared, amaxes are exact maxima).
//   blocks     a scale per row: a block per row, its amax then its cast (the second read from
//              cache); 1×32 and 1×128 blocks on rows of whole float4s: one pass, a warp per 128
//              columns of a row; a given scale (delayed), or one from a bound in device memory
//              (predicted, its amax measured first where the plan re-syncs the bound): the cast
//              alone (the bound read in the kernel, so a recorded graph follows it), or, over the
//              whole tensor for a quantizer whose amax may follow, the cast measuring the amax in
//              the same pass; other blocks: pass 1 the amax of every block (atomic max of the
//              float bits, which order like the values for amax ≥ 0), pass 2 the scales by the
//              plan's rule, pass 3 the cast
//   two_level  the same with 1×G groups, plus the global scale of each coarse block of rows from
//              the groups' s_i = amax_i / fmt_max, then MOSS's local power-of-two exponents; for
//              G = 32 and 128 on rows of whole float4s, two passes (s_i and the coarse maxima,
//              then scales and cast) with one atomic per warp and coarse block
#pragma once

#include <cuda_runtime.h>
#include <functional>
#include <memory>

#include "cuda/device_quantized.h"
#include "recipe/quantize_plan.h"
#include "recipe/recipe.h"

namespace octet::cuda {

// Amaxes on their way to the host without a wait (Quantizer::amax_may_follow): each is copied
// into a slot of pinned memory behind an event, and read when its quantizer asks.
class AmaxReadback {
  public:
    AmaxReadback();
    // A slot for the next amax, with the function that waits for it and gives its value; the
    // function must not be called before commit().
    struct Ticket {
        std::function<float()> fetch;
        int slot;
    };
    Ticket reserve();
    // Copies the float bits at `amax` into the ticket's slot after the stream's work so far.
    void commit(const Ticket& ticket, const uint32_t* amax, cudaStream_t stream);

  private:
    struct Slots;
    struct Pending;
    std::shared_ptr<Slots> slots_; // shared with the functions handed out
};

class PlanRunner {
  public:
    explicit PlanRunner(Memory& memory) : amax_bits_(memory), multipliers_(memory), amax_(memory) {}

    // Quantize x [rows, cols] by `plan` into `out` (its buffers resized as needed).
    void run(const float* x, int64_t rows, int64_t cols, const QuantizePlan& plan,
             DeviceQuantized& out, cudaStream_t stream);

    // The finite amax of x[0, n), on the host (waits for the stream).
    float tensor_amax(const float* x, int64_t n, cudaStream_t stream);

    // Ask `quantizer` for its plan (measuring the tensor's amax first when the quantizer needs
    // it, or after, without waiting for it, when the amax may follow) and run it; returns the
    // plan.
    QuantizePlan quantize(Quantizer& quantizer, const float* x, int64_t rows, int64_t cols,
                          DeviceQuantized& out, cudaStream_t stream);

  private:
    Buffer<uint32_t> amax_bits_; // per block, then per coarse block for two-level
    Buffer<float> multipliers_;  // per block: the scale applied before the cast
    Buffer<uint32_t> amax_;      // tensor_amax()
    AmaxReadback readback_;

    // The finite amax of x[0, n) into amax_ (float bits), on the stream.
    void measure_amax(const float* x, int64_t n, cudaStream_t stream);
    // The same, as a double at `to` (device), for a plan's sync_bound.
    void store_amax(const float* x, int64_t n, double* to, cudaStream_t stream);
    // A plan of one given scale for the whole tensor, run in one pass that also measures the
    // amax into amax_; false (nothing run) for other plans.
    bool run_fixed_measuring_amax(const float* x, int64_t rows, int64_t cols,
                                  const QuantizePlan& plan, DeviceQuantized& out,
                                  cudaStream_t stream);
};

} // namespace octet::cuda
