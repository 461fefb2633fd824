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

// A stateless quantizer: the same plan for every tensor.
class FixedPlanQuantizer final : public Quantizer {
  public:
    explicit FixedPlanQuantizer(QuantizePlan plan) : plan_(plan) {}
    QuantizePlan plan(float) override { return plan_; }

  private:
    QuantizePlan plan_;
};

// Current scaling of each block from its own amax by `rule`.
std::unique_ptr<Quantizer> make_block_quantizer(Format format, BlockShape block,
                                                ScaleEncoding encoding, ScaleRule rule);

// TE's "format" option: hybrid (the default) = E4M3 for activations and weights, E5M2 for
// gradients; e4m3 = E4M3 everywhere.
bool read_hybrid_format(RecipeOptions& options);
Format hybrid_format(bool hybrid, TensorRole role);
std::string hybrid_description(bool hybrid);

} // namespace octet
