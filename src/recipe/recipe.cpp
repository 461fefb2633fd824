// The recipe registry: names → constructors, and tensor roles by name.
#include "recipe/recipe.h"

#include <functional>
#include <map>

#include "common/error.h"
#include "common/strings.h"
#include "recipe/recipes.h"

namespace octet {

QuantizePlan Quantizer::plan_for(MatrixView x) {
    return plan(needs_tensor_amax() ? tensor_amax(x) : 0.0f);
}

QuantizePlan Quantizer::plan_before_amax(std::function<float()>) {
    throw Error("this recipe's plan depends on the tensor's amax: it cannot follow");
}

QuantizedTensor Quantizer::quantize(MatrixView x) {
    return run_plan(x, plan_for(x));
}

void Quantizer::bind_bound(double*, Memory&) {
    throw Error("bind_bound: this recipe's quantizer predicts no bound");
}

void Quantizer::set_state(const std::vector<double>& s) {
    if (!s.empty()) throw Error("checkpoint: recipe state given to a stateless quantizer");
}

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

std::string hybrid_description(bool hybrid) {
    return hybrid ? "hybrid (E4M3 forward, E5M2 gradients)" : "E4M3";
}

std::unique_ptr<Quantizer> make_block_quantizer(Format format, BlockShape block,
                                                ScaleEncoding encoding, ScaleRule rule) {
    return std::make_unique<FixedPlanQuantizer>(
        QuantizePlan::blocks_plan(format, block, encoding, rule));
}

namespace {

class FixedRecipe final : public Recipe {
  public:
    FixedRecipe(std::string name, std::string description, QuantizerMaker make)
        : name_(std::move(name)), description_(std::move(description)), make_(std::move(make)) {}
    std::string name() const override { return name_; }
    std::string describe() const override { return description_; }
    std::unique_ptr<Quantizer> make_quantizer(TensorRole role) const override {
        return make_(role);
    }

  private:
    std::string name_;
    std::string description_;
    QuantizerMaker make_;
};

} // namespace

std::unique_ptr<Recipe> make_fixed_recipe(std::string name, std::string description,
                                          QuantizerMaker make_quantizer) {
    return std::make_unique<FixedRecipe>(std::move(name), std::move(description),
                                         std::move(make_quantizer));
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
    throw Error("unknown recipe '" + options.name() + "' (known: " + join(recipe_names()) + ")");
}

} // namespace octet
