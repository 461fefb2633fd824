// The recipe interface: a high-precision tensor in, a QuantizedTensor out (dequantize() takes it
// back). A Recipe makes one Quantizer per tensor, because some recipes keep state per tensor:
// te-delayed keeps an amax history, moss keeps the predicted weight bound. A Quantizer does not
// touch the data itself: it answers each tensor with a plan (quantize_plan.h) that the CPU and
// the GPU both run. Its state is on the host, but for MOSS's bound, which lives where the plan
// reads it (bind_bound()).
//
// Recipes, by the names used everywhere (CLI, configs, docs/recipes.md):
//   te-current  per-tensor current scaling                    (TE Float8CurrentScaling)
//   te-delayed  per-tensor delayed scaling from amax history  (TE DelayedScaling)
//   rowwise     one scale per row                             (torchao "rowwise")
//   blockwise   1×128 activations/gradients, 128×128 weights  (DeepSeek-V3, TE Float8BlockScaling)
//   mxfp8       1×32 blocks, E8M0 scales                      (OCP MX v1.0, emulated on Hopper)
//   moss        two-level microscaling + predicted weight scales (MOSS, arXiv 2511.05811)
// A spec may carry options: "blockwise:pow2=true", "moss:group=128,resync=1000".
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numerics/quantized_tensor.h"
#include "recipe/quantize_plan.h"

namespace octet {

// What a tensor is to a GEMM: recipes scale and format each role differently.
enum class TensorRole { activation, weight, gradient };

const char* role_name(TensorRole role);
TensorRole parse_role(std::string_view name); // throws Error naming the bad value

// How coarsely AdamW stores its moments between steps, as unit roundoffs: 0 for FP32 (whose
// arithmetic MOSS's bound has a margin for), 2^-8 for BF16, +∞ for scaled FP16 or FP8 moments,
// which underflow (moment_roundoff in moss_weight_scaling.h).
struct MomentRounding {
    double m = 0.0, v = 0.0;
};

// What an optimizer step tells the quantizer of the weight it updated. MOSS predicts the weight's
// amax from these instead of measuring it.
struct OptimizerStep {
    double lr = 0.0;
    double weight_decay = 0.0;
    double beta1 = 0.9;
    double beta2 = 0.95;
    int64_t step = 0; // 1-based index of the AdamW step just taken
    MomentRounding moments;
};

class Memory;

class Quantizer {
  public:
    virtual ~Quantizer() = default;
    // Whether plan() needs the finite amax of the tensor it plans for (te-delayed records it in
    // its history; MOSS re-syncs its weight bound with it).
    virtual bool needs_tensor_amax() const { return false; }
    // The plan for the next tensor, advancing the state as quantizing that tensor does.
    // `tensor_amax` is the tensor's amax when needs_tensor_amax() said so, else unused.
    virtual QuantizePlan plan(float tensor_amax) = 0;
    // Whether the plan does not depend on the tensor's amax, which only joins the state (delayed
    // scaling). A device backend then need not wait for the amax: plan_before_amax() gives the
    // plan, and the amax follows through `fetch`, which the quantizer calls on the host before
    // its next plan or state read, so the state is what plan(amax) would have made it.
    virtual bool amax_may_follow() const { return false; }
    virtual QuantizePlan plan_before_amax(std::function<float()> fetch);
    // plan() for a tensor on the host, its amax measured when the quantizer needs it.
    QuantizePlan plan_for(MatrixView x);
    // Quantize on the CPU: plan, then run the plan.
    QuantizedTensor quantize(MatrixView x);
    // Called after each optimizer step of the tensor (weights only); most recipes ignore it.
    virtual void on_optimizer_step(const OptimizerStep&) {}
    // Quantizers whose plans read a bound on the tensor's amax from memory (MOSS's predicted
    // weight bound: recipe/moss_weight_scaling.h) keep it in a slot: their own, on the host,
    // until bind_bound() gives them one in the backend's memory, where the model advances every
    // such slot after each optimizer step (Ops::advance_weight_bounds).
    virtual bool predicts_bound() const { return false; }
    virtual void bind_bound(double* slot, Memory& memory); // Error where !predicts_bound()
    // Whether the next plan() is the one this quantizer gave last (before its first: the one it
    // will give from then on). Not so for te-delayed, whose scale moves every step, nor at MOSS's
    // re-syncs. A step recorded as a graph replays the plans it was recorded with, so a step
    // planned otherwise runs eagerly.
    virtual bool plan_is_steady() const { return true; }
    // The quantizer's state across steps (amax history, predicted bound), for checkpoints; empty
    // for stateless recipes. set_state() takes what state() gave, or throws Error.
    virtual std::vector<double> state() const { return {}; }
    virtual void set_state(const std::vector<double>& s);
};

class Recipe {
  public:
    virtual ~Recipe() = default;
    virtual std::string name() const = 0;
    // One-line description with the resolved options, for tables and logs.
    virtual std::string describe() const = 0;
    virtual std::unique_ptr<Quantizer> make_quantizer(TensorRole role) const = 0;
};

// "name" or "name:key=value,key=value". Unknown names, keys or bad values throw Error.
std::unique_ptr<Recipe> make_recipe(std::string_view spec);

// The recipe names, in the order tables list them.
const std::vector<std::string>& recipe_names();

} // namespace octet
