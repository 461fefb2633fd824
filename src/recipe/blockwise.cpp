// blockwise: DeepSeek-V3 fine-grained scaling (TE Float8BlockScaling). Activations and gradients
// get one scale per 1×128 group along K, weights one per 128×128 block; E4M3 everywhere; current
// scaling. DeepSeek-V3 keeps FP32 scales; TE forces power-of-two unless told otherwise, and so does
// FP8-Flow-MoE (whose scaling-aware transpose needs them): pow2=true selects that.
// Options: pow2 (false), group (128), weight_block (128).
#include <string>

#include "recipe/recipes.h"

namespace octet {
namespace {

struct BlockwiseOptions {
    bool pow2;
    int64_t group;
    int64_t weight_block;
};

class BlockwiseQuantizer final : public Quantizer {
  public:
    BlockwiseQuantizer(BlockShape block, bool pow2) : block_(block), pow2_(pow2) {}
    QuantizedTensor quantize(MatrixView x) override {
        return quantize_blocks(x, Format::e4m3, block_, ScaleEncoding::fp32, [&](float amax) {
            return scale_from_amax(amax, format_max(Format::e4m3), 0, pow2_);
        });
    }

  private:
    BlockShape block_;
    bool pow2_;
};

class BlockwiseRecipe final : public Recipe {
  public:
    explicit BlockwiseRecipe(BlockwiseOptions o) : o_(o) {}
    std::string name() const override { return "blockwise"; }
    std::string describe() const override {
        return "blockwise: 1x" + std::to_string(o_.group) + " activations/gradients, " +
               std::to_string(o_.weight_block) + "x" + std::to_string(o_.weight_block) +
               " weights, " + (o_.pow2 ? "power-of-two" : "fp32") + " scales, E4M3";
    }
    std::unique_ptr<Quantizer> make_quantizer(TensorRole role) const override {
        const BlockShape block = role == TensorRole::weight
                                     ? BlockShape{o_.weight_block, o_.weight_block}
                                     : BlockShape{1, o_.group};
        return std::make_unique<BlockwiseQuantizer>(block, o_.pow2);
    }

  private:
    BlockwiseOptions o_;
};

} // namespace

std::unique_ptr<Recipe> make_blockwise(RecipeOptions& options) {
    BlockwiseOptions o;
    o.pow2 = options.get_bool("pow2", false);
    o.group = options.get_int("group", 128, 1, 1 << 20);
    o.weight_block = options.get_int("weight_block", 128, 1, 1 << 20);
    return std::make_unique<BlockwiseRecipe>(o);
}

} // namespace octet
