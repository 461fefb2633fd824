// te-current: per-tensor current ("just-in-time") scaling. The scale comes from this tensor's amax
// now: scale = (fmt_max / amax) / 2^margin, optionally rounded down to a power of two.
// TE Float8CurrentScaling; torchao "tensorwise".
// Options: margin (0), pow2 (false), format = hybrid | e4m3 (hybrid).
#include <string>

#include "recipe/recipes.h"

namespace octet {
namespace {

struct TeCurrentOptions {
    int margin;
    bool pow2;
    bool hybrid;
};

class TeCurrentQuantizer final : public Quantizer {
  public:
    TeCurrentQuantizer(TeCurrentOptions o, Format f) : o_(o), format_(f) {}
    QuantizedTensor quantize(MatrixView x) override {
        const float fmt_max = format_max(format_);
        return quantize_blocks(x, format_, whole_tensor(x), ScaleEncoding::fp32, [&](float amax) {
            return scale_from_amax(amax, fmt_max, o_.margin, o_.pow2);
        });
    }

  private:
    TeCurrentOptions o_;
    Format format_;
};

class TeCurrentRecipe final : public Recipe {
  public:
    explicit TeCurrentRecipe(TeCurrentOptions o) : o_(o) {}
    std::string name() const override { return "te-current"; }
    std::string describe() const override {
        return "te-current: per-tensor current scaling, margin=" + std::to_string(o_.margin) +
               (o_.pow2 ? ", power-of-two" : ", fp32") + " scale, " +
               (o_.hybrid ? "hybrid (E5M2 gradients)" : "E4M3");
    }
    std::unique_ptr<Quantizer> make_quantizer(TensorRole role) const override {
        return std::make_unique<TeCurrentQuantizer>(o_, hybrid_format(o_.hybrid, role));
    }

  private:
    TeCurrentOptions o_;
};

} // namespace

std::unique_ptr<Recipe> make_te_current(RecipeOptions& options) {
    TeCurrentOptions o;
    o.margin = int(options.get_int("margin", 0, 0, 32));
    o.pow2 = options.get_bool("pow2", false);
    o.hybrid = read_hybrid_format(options);
    return std::make_unique<TeCurrentRecipe>(o);
}

} // namespace octet
