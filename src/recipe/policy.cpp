// The precision policies (table in policy.h).
#include "recipe/policy.h"

#include <cmath>

#include "common/error.h"
#include "common/strings.h"
#include "recipe/moss_weight_scaling.h"
#include "recipe/recipe.h"
#include "recipe/recipe_options.h"

namespace octet {

const char* storage_format_name(StorageFormat f) {
    switch (f) {
    case StorageFormat::fp32:
        return "fp32";
    case StorageFormat::fp16:
        return "fp16";
    case StorageFormat::bf16:
        return "bf16";
    case StorageFormat::e4m3:
        return "e4m3";
    default:
        return "e5m2";
    }
}

const std::vector<std::string>& policy_names() {
    static const std::vector<std::string> names = {
        "fp32",      "bf16",  "te-current", "te-delayed", "rowwise",
        "blockwise", "mxfp8", "moss",       "fp8lm-o1",   "fp8lm-o2"};
    return names;
}

static StorageFormat parse_storage(RecipeOptions& o, const std::string& key,
                                   StorageFormat fallback) {
    const std::string s =
        o.get_choice(key, storage_format_name(fallback), {"fp32", "fp16", "bf16", "e4m3", "e5m2"});
    for (StorageFormat f : {StorageFormat::fp32, StorageFormat::fp16, StorageFormat::bf16,
                            StorageFormat::e4m3, StorageFormat::e5m2})
        if (s == storage_format_name(f)) return f;
    return fallback;
}

PrecisionPolicy make_policy(std::string_view spec) {
    RecipeOptions options(spec);
    PrecisionPolicy p;
    p.name = options.name();
    bool known = false;
    for (const std::string& n : policy_names()) known |= n == p.name;
    if (!known) {
        throw Error("unknown recipe '" + p.name + "' (known: " + join(policy_names()) + ")");
    }
    if (p.name == "fp32") {
        p.gemm = p.lm_head = PrecisionPolicy::Gemm::fp32;
    } else if (p.name == "bf16") {
        p.gemm = PrecisionPolicy::Gemm::bf16;
    } else if (p.name == "fp8lm-o1" || p.name == "fp8lm-o2") {
        // FP8-LM (arXiv 2310.18313): per-tensor power-of-two scales, E4M3 forward, E5M2 backward.
        p.gemm = PrecisionPolicy::Gemm::fp8;
        p.gemm_recipe = "te-current:pow2=true";
        p.weight_grad = StorageFormat::e4m3;
        p.master = StorageFormat::fp16;
        if (p.name == "fp8lm-o2") {
            p.moment1 = StorageFormat::e4m3;
            p.moment2 = StorageFormat::fp16;
        }
    } else {
        p.gemm = PrecisionPolicy::Gemm::fp8;
        p.gemm_recipe = p.name;
        // DeepSeek-V3 (§3.3.3) keeps AdamW's moments in BF16, "without observable performance
        // degradation"; master weights and gradients stay FP32. So does moss, whose weight-scale
        // bound covers BF16 moments (recipe/moss_weight_scaling.h).
        if (p.name == "blockwise" || p.name == "moss") p.moment1 = p.moment2 = StorageFormat::bf16;
    }
    p.master = parse_storage(options, "master", p.master);
    p.moment1 = parse_storage(options, "moment1", p.moment1);
    p.moment2 = parse_storage(options, "moment2", p.moment2);
    p.weight_grad = parse_storage(options, "weight_grad", p.weight_grad);
    // MOSS's weight-scale bound (recipe/moss_weight_scaling.h) holds for an FP32 master with the
    // moments whose roundoff it covers (FP32, BF16): FP16 masters round by 2^-11, and scaled
    // moments underflow.
    if (p.name == "moss" &&
        (p.master != StorageFormat::fp32 || !std::isfinite(moment_roundoff(p.moment1)) ||
         !std::isfinite(moment_roundoff(p.moment2))))
        throw Error("recipe 'moss' predicts weight scales from AdamW with an fp32 master and fp32 "
                    "or bf16 moments");
    // The remaining options belong to the FP8 recipe; make_recipe rejects unknown ones.
    if (p.gemm == PrecisionPolicy::Gemm::fp8) {
        const std::string rest = options.unused();
        if (!rest.empty())
            p.gemm_recipe += (p.gemm_recipe.find(':') == std::string::npos ? ":" : ",") + rest;
        make_recipe(p.gemm_recipe); // validate now, with its own error messages
    } else {
        options.finish();
    }
    return p;
}

std::string PrecisionPolicy::describe() const {
    const char* gemm_name = gemm == Gemm::fp32 ? "fp32" : gemm == Gemm::bf16 ? "bf16" : "fp8";
    std::string s = name + ": GEMMs " + gemm_name;
    if (gemm == Gemm::fp8) s += " (" + make_recipe(gemm_recipe)->describe() + ")";
    s += std::string(", weight grads ") + storage_format_name(weight_grad) + ", master " +
         storage_format_name(master) + ", Adam m " + storage_format_name(moment1) + ", v " +
         storage_format_name(moment2);
    return s;
}

bool PrecisionPolicy::plans_change_every_step() const {
    if (gemm != Gemm::fp8) return false;
    const std::unique_ptr<Recipe> recipe = make_recipe(gemm_recipe);
    for (TensorRole role : {TensorRole::activation, TensorRole::weight, TensorRole::gradient})
        if (!recipe->make_quantizer(role)->plan_is_steady()) return true;
    return false;
}

int PrecisionPolicy::bytes_per_parameter() const {
    return storage_format_bytes(master) + storage_format_bytes(weight_grad) +
           storage_format_bytes(moment1) + storage_format_bytes(moment2);
}

} // namespace octet
