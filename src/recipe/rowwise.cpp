// rowwise: one scale per row (per token for activations, per output channel for weights), E4M3
// everywhere, scales rounded down to powers of two by default (torchao "rowwise").
// Options: pow2 (true).
#include "recipe/recipes.h"

namespace octet {

std::unique_ptr<Recipe> make_rowwise(RecipeOptions& options) {
    const bool pow2 = options.get_bool("pow2", true);
    return make_fixed_recipe(
        "rowwise",
        std::string("rowwise: one ") + (pow2 ? "power-of-two" : "fp32") + " scale per row, E4M3",
        [=](TensorRole) {
            return make_block_quantizer(Format::e4m3, BlockShape{1, 0}, ScaleEncoding::fp32,
                                        ScaleRule::from_amax(Format::e4m3, 0, pow2));
        });
}

} // namespace octet
