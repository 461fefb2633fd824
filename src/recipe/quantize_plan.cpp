// Running a quantize plan on the CPU (see quantize_plan.h).
#include "recipe/quantize_plan.h"

#include "recipe/block_quantize.h"

namespace octet {

bool QuantizePlan::power_of_two_scales() const {
    if (kind == Kind::two_level) return false; // the global level is any FP32 value
    if (encoding == ScaleEncoding::e8m0) return true;
    switch (rule.kind) {
    case ScaleRule::Kind::mx:
        return true;
    case ScaleRule::Kind::fixed:
        return is_power_of_two(rule.fixed.scale_inv);
    case ScaleRule::Kind::bound:
        return false;
    default:
        return rule.pow2;
    }
}

QuantizedTensor run_plan(MatrixView x, const QuantizePlan& plan) {
    if (plan.sync_bound) *plan.sync_bound = double(tensor_amax(x));
    if (plan.kind == QuantizePlan::Kind::two_level) return quantize_two_level(x, plan.two_level);
    const ScaleRule rule = plan.rule;
    return quantize_blocks(x, plan.format, plan.block, plan.encoding,
                           [&](float amax) { return rule(amax); });
}

} // namespace octet
