// te-current: per-tensor current ("just-in-time") scaling. The scale comes from this tensor's amax
// now: scale = (fmt_max / amax) / 2^margin, optionally rounded down to a power of two.
// TE Float8CurrentScaling; torchao "tensorwise".
// Options: margin (0), pow2 (false), format = hybrid | e4m3 (hybrid).
#include "recipe/recipes.h"

namespace octet {

std::unique_ptr<Recipe> make_te_current(RecipeOptions& options) {
    const int margin = int(options.get_int("margin", 0, 0, 32));
    const bool pow2 = options.get_bool("pow2", false);
    const bool hybrid = read_hybrid_format(options);
    return make_fixed_recipe(
        "te-current",
        "te-current: per-tensor current scaling, margin=" + std::to_string(margin) +
            (pow2 ? ", power-of-two" : ", fp32") + " scale, " + hybrid_description(hybrid),
        [=](TensorRole role) {
            const Format f = hybrid_format(hybrid, role);
            return make_block_quantizer(f, BlockShape{0, 0}, ScaleEncoding::fp32,
                                        ScaleRule::from_amax(f, margin, pow2));
        });
}

} // namespace octet
