// The pieces recipes are built from, and the constructors the registry in recipe.cpp calls.
// Each constructor reads its options from a RecipeOptions; the registry then calls finish() to
// reject unknown keys.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "recipe/block_quantize.h"
#include "recipe/recipe.h"
#include "recipe/recipe_options.h"

namespace octet {

std::unique_ptr<Recipe> make_te_current(RecipeOptions& options);
std::unique_ptr<Recipe> make_te_delayed(RecipeOptions& options);
std::unique_ptr<Recipe> make_rowwise(RecipeOptions& options);
std::unique_ptr<Recipe> make_blockwise(RecipeOptions& options);
std::unique_ptr<Recipe> make_mxfp8(RecipeOptions& options);
std::unique_ptr<Recipe> make_moss(RecipeOptions& options);

// A recipe fixed at construction: its name, a one-line description with the resolved options,
// and the quantizer it makes for each role.
using QuantizerMaker = std::function<std::unique_ptr<Quantizer>(TensorRole)>;
std::unique_ptr<Recipe> make_fixed_recipe(std::string name, std::string description,
                                          QuantizerMaker make_quantizer);

// A stateless quantizer: current scaling of each block from its own amax by `rule`.
class BlockQuantizer final : public Quantizer {
  public:
    using Rule = std::function<BlockScale(float amax)>;
    BlockQuantizer(Format format, BlockShape block, ScaleEncoding encoding, Rule rule)
        : format_(format), block_(block), encoding_(encoding), rule_(std::move(rule)) {}
    QuantizedTensor quantize(MatrixView x) override {
        return quantize_blocks(x, format_, block_, encoding_, rule_);
    }

  private:
    Format format_;
    BlockShape block_;
    ScaleEncoding encoding_;
    Rule rule_;
};

// TE's "format" option: hybrid (the default) = E4M3 for activations and weights, E5M2 for
// gradients; e4m3 = E4M3 everywhere.
bool read_hybrid_format(RecipeOptions& options);
Format hybrid_format(bool hybrid, TensorRole role);
std::string hybrid_description(bool hybrid);

// The TE/DeepSeek rule from amax to scale (numerics/scaling.h) for one format.
BlockQuantizer::Rule amax_rule(Format format, int margin, bool power_of_two);

} // namespace octet
