// mxfp8: OCP Microscaling (MX v1.0): blocks of 32 consecutive elements along K share one E8M0
// scale 2^(floor(log2 amax) − emax_elem); elements are cast after dividing by it, saturating.
// Hopper has no MX tensor-core path: Octet emulates it (dequantized GEMM operands).
// Options: format = e4m3 | e5m2 (e4m3, all roles).
#include <string>

#include "recipe/recipes.h"

namespace octet {
namespace {

constexpr int64_t mx_block = 32;

class MxQuantizer final : public Quantizer {
  public:
    explicit MxQuantizer(Format f) : format_(f) {}
    QuantizedTensor quantize(MatrixView x) override {
        return quantize_blocks(x, format_, {1, mx_block}, ScaleEncoding::e8m0,
                               [&](float amax) { return mx_scale_from_amax(amax, format_); });
    }

  private:
    Format format_;
};

class MxRecipe final : public Recipe {
  public:
    explicit MxRecipe(Format f) : format_(f) {}
    std::string name() const override { return "mxfp8"; }
    std::string describe() const override {
        return std::string("mxfp8: 1x32 blocks, E8M0 scales, ") + format_name(format_) +
               " (emulated on Hopper)";
    }
    std::unique_ptr<Quantizer> make_quantizer(TensorRole) const override {
        return std::make_unique<MxQuantizer>(format_);
    }

  private:
    Format format_;
};

} // namespace

std::unique_ptr<Recipe> make_mxfp8(RecipeOptions& options) {
    return std::make_unique<MxRecipe>(options.get_fp8_format("format", Format::e4m3));
}

} // namespace octet
