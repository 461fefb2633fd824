// rowwise: one scale per row (per token for activations, per output channel for weights), E4M3
// everywhere, scales rounded down to powers of two by default (torchao "rowwise").
// Options: pow2 (true).
#include <string>

#include "recipe/recipes.h"

namespace octet {
namespace {

class RowwiseQuantizer final : public Quantizer {
  public:
    explicit RowwiseQuantizer(bool pow2) : pow2_(pow2) {}
    QuantizedTensor quantize(MatrixView x) override {
        const BlockShape row{1, x.cols > 0 ? x.cols : 1};
        return quantize_blocks(x, Format::e4m3, row, ScaleEncoding::fp32, [&](float amax) {
            return scale_from_amax(amax, format_max(Format::e4m3), 0, pow2_);
        });
    }

  private:
    bool pow2_;
};

class RowwiseRecipe final : public Recipe {
  public:
    explicit RowwiseRecipe(bool pow2) : pow2_(pow2) {}
    std::string name() const override { return "rowwise"; }
    std::string describe() const override {
        return std::string("rowwise: one ") + (pow2_ ? "power-of-two" : "fp32") +
               " scale per row, E4M3";
    }
    std::unique_ptr<Quantizer> make_quantizer(TensorRole) const override {
        return std::make_unique<RowwiseQuantizer>(pow2_);
    }

  private:
    bool pow2_;
};

} // namespace

std::unique_ptr<Recipe> make_rowwise(RecipeOptions& options) {
    return std::make_unique<RowwiseRecipe>(options.get_bool("pow2", true));
}

} // namespace octet
