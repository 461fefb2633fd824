// The recipe registry: names → constructors, and tensor roles by name.
#include "recipe/recipe.h"

#include <functional>
#include <map>

#include "common/error.h"
#include "recipe/recipes.h"

namespace octet {

const char* role_name(TensorRole role) {
    switch (role) {
    case TensorRole::activation:
        return "activation";
    case TensorRole::weight:
        return "weight";
    default:
        return "gradient";
    }
}

TensorRole parse_role(std::string_view name) {
    for (TensorRole r : {TensorRole::activation, TensorRole::weight, TensorRole::gradient})
        if (name == role_name(r)) return r;
    throw Error("unknown tensor role '" + std::string(name) +
                "' (expected activation | weight | gradient)");
}

bool read_hybrid_format(RecipeOptions& options) {
    return options.get_choice("format", "hybrid", {"hybrid", "e4m3"}) == "hybrid";
}

Format hybrid_format(bool hybrid, TensorRole role) {
    return hybrid && role == TensorRole::gradient ? Format::e5m2 : Format::e4m3;
}

using RecipeFactory = std::function<std::unique_ptr<Recipe>(RecipeOptions&)>;

static const std::vector<std::pair<std::string, RecipeFactory>>& registry() {
    static const std::vector<std::pair<std::string, RecipeFactory>> entries = {
        {"te-current", make_te_current}, {"te-delayed", make_te_delayed}, {"rowwise", make_rowwise},
        {"blockwise", make_blockwise},   {"mxfp8", make_mxfp8},           {"moss", make_moss},
    };
    return entries;
}

const std::vector<std::string>& recipe_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const auto& [name, factory] : registry()) n.push_back(name);
        return n;
    }();
    return names;
}

std::unique_ptr<Recipe> make_recipe(std::string_view spec) {
    RecipeOptions options(spec);
    for (const auto& [name, factory] : registry()) {
        if (name != options.name()) continue;
        std::unique_ptr<Recipe> recipe = factory(options);
        options.finish();
        return recipe;
    }
    std::string known;
    for (const std::string& n : recipe_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown recipe '" + options.name() + "' (known: " + known + ")");
}

} // namespace octet
