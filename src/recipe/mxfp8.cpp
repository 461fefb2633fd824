// mxfp8: OCP Microscaling (MX v1.0): blocks of 32 consecutive elements along K share one E8M0
// scale 2^(floor(log2 amax) − emax_elem); elements are cast after dividing by it, saturating.
// Hopper has no MX tensor-core path: Octet emulates it (dequantized GEMM operands).
// Options: format = e4m3 | e5m2 (e4m3, all roles).
#include "recipe/recipes.h"

namespace octet {

constexpr int64_t mx_block = 32;

std::unique_ptr<Recipe> make_mxfp8(RecipeOptions& options) {
    const Format format = options.get_fp8_format("format", Format::e4m3);
    return make_fixed_recipe("mxfp8",
                             std::string("mxfp8: 1x32 blocks, E8M0 scales, ") +
                                 format_name(format) + " (emulated on Hopper)",
                             [=](TensorRole) {
                                 return make_block_quantizer(format, BlockShape{1, mx_block},
                                                             ScaleEncoding::e8m0,
                                                             ScaleRule::mx(format));
                             });
}

} // namespace octet
