// Constructors of the individual recipes, used only by the registry in recipe.cpp. Each reads its
// options from a RecipeOptions (and the registry calls finish() to reject unknown keys).
#pragma once

#include <memory>

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

// TE's "format" option: hybrid (the default) = E4M3 for activations and weights, E5M2 for
// gradients; e4m3 = E4M3 everywhere.
bool read_hybrid_format(RecipeOptions& options);
Format hybrid_format(bool hybrid, TensorRole role);

// The block that covers the whole tensor (at least 1×1, so an empty tensor has one unit scale).
inline BlockShape whole_tensor(MatrixView x) {
    return {x.rows > 0 ? x.rows : 1, x.cols > 0 ? x.cols : 1};
}

} // namespace octet
