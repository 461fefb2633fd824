// blockwise: DeepSeek-V3 fine-grained scaling (TE Float8BlockScaling). Activations and gradients
// get one scale per 1×128 group along K, weights one per 128×128 block; E4M3 everywhere; current
// scaling. DeepSeek-V3 keeps FP32 scales; TE forces power-of-two unless told otherwise, and so does
// FP8-Flow-MoE (whose scaling-aware transpose needs them): pow2=true selects that.
// Options: pow2 (false), group (128), weight_block (128).
#include "recipe/recipes.h"

namespace octet {

std::unique_ptr<Recipe> make_blockwise(RecipeOptions& options) {
    const bool pow2 = options.get_bool("pow2", false);
    const int64_t group = options.get_int("group", 128, 1, 1 << 20);
    const int64_t weight_block = options.get_int("weight_block", 128, 1, 1 << 20);
    return make_fixed_recipe(
        "blockwise",
        "blockwise: 1x" + std::to_string(group) + " activations/gradients, " +
            std::to_string(weight_block) + "x" + std::to_string(weight_block) + " weights, " +
            (pow2 ? "power-of-two" : "fp32") + " scales, E4M3",
        [=](TensorRole role) {
            const BlockShape block = role == TensorRole::weight
                                         ? BlockShape{weight_block, weight_block}
                                         : BlockShape{1, group};
            return make_block_quantizer(Format::e4m3, block, ScaleEncoding::fp32,
                                        ScaleRule::from_amax(Format::e4m3, 0, pow2));
        });
}

} // namespace octet
