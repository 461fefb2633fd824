// What one quantize() call does, as plain data: the block shape, the format and the rule from a
// block's amax to its scale. Every Quantizer answers with a plan (recipe.h); the CPU runs it here
// and the GPU backend runs the same plan in its kernels (cuda/quantize_plan.h), so both backends
// quantize by one definition and agree bit for bit. A recipe's state across steps (te-delayed's
// amax history) lives in the Quantizer and reaches the plan as a fixed scale; MOSS's predicted
// weight bound lives in the backend's memory, where the plan reads it.
#pragma once

#include "common/hostdevice.h"
#include "numerics/quantized_tensor.h"
#include "numerics/scaling.h"
#include "recipe/block_quantize.h"
#include "recipe/moss.h"

namespace octet {

// From a block's amax to its scale (numerics/scaling.h has the formulas).
struct ScaleRule {
    enum class Kind : uint8_t {
        amax,  // TE / DeepSeek: fmt_max / amax, optionally a power of two, minus a margin
        mx,    // OCP MX: 2^(floor(log2 amax) − emax_elem)
        fixed, // one given scale for every block (delayed scaling)
        bound, // one scale from the bound on the tensor's amax at `bound` (predicted scaling)
    };
    Kind kind = Kind::amax;
    Format format = Format::e4m3;
    int margin = 0;
    bool pow2 = false;
    BlockScale fixed = unit_scale();
    // Kind::bound: in the memory of the backend that runs the plan, read when the plan runs, so
    // a recorded plan (Ops::record()) follows the bound as the device advances it.
    const double* bound = nullptr;

    static ScaleRule from_amax(Format format, int margin, bool pow2) {
        return {Kind::amax, format, margin, pow2, unit_scale(), nullptr};
    }
    static ScaleRule mx(Format format) {
        return {Kind::mx, format, 0, true, unit_scale(), nullptr};
    }
    static ScaleRule given(BlockScale scale) {
        return {Kind::fixed, Format::e4m3, 0, false, scale, nullptr};
    }
    static ScaleRule from_bound(Format format, const double* bound) {
        return {Kind::bound, format, 0, false, unit_scale(), bound};
    }
    // Whether a block's scale depends on its amax (else the runners need not measure it).
    OCTET_HD bool reads_amax() const { return kind == Kind::amax || kind == Kind::mx; }

    OCTET_HD BlockScale operator()(float amax) const {
        switch (kind) {
        case Kind::mx:
            return mx_scale_from_amax(amax, format);
        case Kind::fixed:
            return fixed;
        case Kind::bound:
            return scale_from_bound(*bound, format_max(format));
        default:
            return scale_from_amax(amax, format_max(format), margin, pow2);
        }
    }
};

struct QuantizePlan {
    enum class Kind : uint8_t {
        blocks,    // one scale per block of `block`, from the block's amax by `rule`
        two_level, // MOSS two-level microscaling by `two_level`
    };
    Kind kind = Kind::blocks;
    Format format = Format::e4m3;
    BlockShape block{0, 0};
    ScaleEncoding encoding = ScaleEncoding::fp32;
    ScaleRule rule;
    TwoLevelOptions two_level;
    // Where the runner stores the tensor's finite amax (as a double) before it quantizes, or
    // nullptr: MOSS re-syncs its predicted bound so, the rule's own `bound`. In the memory of the
    // backend that runs the plan.
    double* sync_bound = nullptr;

    static QuantizePlan blocks_plan(Format format, BlockShape block, ScaleEncoding encoding,
                                    ScaleRule rule) {
        return {Kind::blocks, format, block, encoding, rule, {}, nullptr};
    }
    // The whole tensor with one given scale (delayed scaling).
    static QuantizePlan per_tensor(Format format, BlockScale scale) {
        return blocks_plan(format, {0, 0}, ScaleEncoding::fp32, ScaleRule::given(scale));
    }
    // The whole tensor with the scale of the bound at `bound`, set to the tensor's amax first
    // when `sync` (predicted scaling).
    static QuantizePlan per_tensor_bound(Format format, double* bound, bool sync) {
        QuantizePlan p =
            blocks_plan(format, {0, 0}, ScaleEncoding::fp32, ScaleRule::from_bound(format, bound));
        if (sync) p.sync_bound = bound;
        return p;
    }
    static QuantizePlan two_level_plan(TwoLevelOptions options) {
        return {Kind::two_level, options.format, {0, 0}, ScaleEncoding::fp32, {}, options, nullptr};
    }

    // Whether every scale this plan produces is a power of two whatever the data, which is what
    // the scaling-aware transpose needs (recipe/transpose.h).
    bool power_of_two_scales() const;
};

// Run a plan on the CPU.
QuantizedTensor run_plan(MatrixView x, const QuantizePlan& plan);

} // namespace octet
