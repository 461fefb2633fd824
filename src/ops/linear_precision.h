// How a linear layer's GEMM operands are represented, per the precision policy:
//   exact  FP32 operands (the float64 checks and the `fp32` policy)
//   bf16   operands rounded to BF16, FP32 accumulation (BF16 autocast)
//   fp8    operands quantized by a recipe, exactly as the GPU will quantize them:
//            fprop  y  = x · Wᵀ        x: activation, W: weight        (groups along K)
//            dgrad  dx = dy · W        dy: gradient (groups along M),  Wᵀ: transposed weight
//            wgrad  dW = dyᵀ · x       dyᵀ and xᵀ: transposed, groups along tokens
//          The transposed operands come from the FP8 tensors of the forward/dgrad through
//          transpose_for_gemm (exact or scaling-aware), or where the recipe's layout allows
//          neither, from the high-precision tensors themselves: xᵀ then is quantized in the
//          forward, while x is at hand, as TE's column-wise copy is.
// One object per linear layer: it holds the recipe's per-tensor quantizer state (delayed amax
// histories, the MOSS weight predictor) and the operands a step reuses (x, or xᵀ, from the
// forward for wgrad, W for dgrad, dy from dgrad for wgrad).
//
// So under bf16 and fp8 the backward never reads the layer's high-precision input: the model
// may overwrite it once the forward has run (keeps_input()), and keeps only what the layer kept,
// in BF16 or FP8, instead of an FP32 copy per layer.
//
// The CPU backend multiplies FP8 operands as a Hopper kernel does (cpu/linear.cpp): partial sums
// of the raw FP8 values over each K-block in FP32, promoted and multiplied by the A and B scales
// of that block (every 128 of K for block-wise, 32 for MX and MOSS local scales), per-tensor
// scales once in the epilogue.
#pragma once

#include <memory>
#include <vector>

#include "numerics/quantized_tensor.h"
#include "ops/memory.h"
#include "recipe/recipe.h"
#include "recipe/transpose.h"

namespace octet {

class LinearPrecision {
  public:
    enum class Kind { exact, bf16, fp8 };

    static std::unique_ptr<LinearPrecision> exact();
    static std::unique_ptr<LinearPrecision> bf16();
    static std::unique_ptr<LinearPrecision> fp8(const Recipe& recipe);

    Kind kind() const { return kind_; }
    // Whether the forward keeps its own rounded or quantized x for the backward, so the backward
    // needs no `in` (ops.h's LinearBackwardArgs); exact layers multiply the input itself.
    bool keeps_input() const { return kind_ != Kind::exact; }
    // The layer as the `consumer` of the op that writes its input (ops.h): itself where its
    // forward alone reads that input (it keeps its own copy for the backward), else nullptr.
    const LinearPrecision* as_consumer() const { return keeps_input() ? this : nullptr; }
    // What the backward is given as `in`: the forward's input, or nullptr where the layer kept it.
    template <typename T>
    const T* backward_input(const T* forward_input) const {
        return keeps_input() ? nullptr : forward_input;
    }

    // BF16: the operands rounded to BF16. Call in this order within a step: forward, dgrad,
    // wgrad; the backward reuses what the forward rounded (x and W) and dgrad rounded (dy).
    void forward_operands(const float* x, int64_t n, int64_t k, const float* w, int64_t m,
                          std::vector<float>& xq, std::vector<float>& wq);
    // dyq [n, m]; wtq = Wᵀ [k, m], with n, k, m of the last forward.
    void dgrad_operands(const float* dy, std::vector<float>& dyq, std::vector<float>& wtq);
    // dytq = dyᵀ [m, n]; xtq = xᵀ [k, n].
    void wgrad_operands(std::vector<float>& dytq, std::vector<float>& xtq);

    // FP8: the quantized operands (a, b) of out = a · bᵀ, both with groups along K; same order.
    struct Fp8Operands {
        const QuantizedTensor& a;
        const QuantizedTensor& b;
    };
    Fp8Operands forward_fp8(const float* x, int64_t n, int64_t k, const float* w, int64_t m);
    // The high-precision dy and W are the sources of transposes (x's was the forward's).
    Fp8Operands dgrad_fp8(const float* dy, const float* w); // a = dy [n, m], b = Wᵀ [k, m]
    Fp8Operands wgrad_fp8();                                // a = dyᵀ [m, n], b = xᵀ [k, n]
    // FP8 layers whose recipe quantizes both orientations in one pass (block-wise, MX, MOSS:
    // recipe/transpose.h's quantizes_both_in_one_pass) take x and dy rounded to BF16, as the GPU's
    // ops hand them over (norms, activations and attention write BF16 for such a layer, as for a
    // BF16 one): forward_fp8 and dgrad_fp8 round what they are given, and xᵀ and dyᵀ are
    // quantized from those sources, as the GPU's one pass does (never transposed from the codes,
    // even where the plan's power-of-two scales would allow it: MX's saturated codes would differ).
    bool fp8_bf16_sources() const { return bf16_sources_; }
    // The dy the last dgrad_fp8 quantized: rounded, or as given (the bias gradient's source).
    const float* fp8_dy() const { return dy_source_; }

    // FP8: the recipe's quantizers, for backends that run the plans themselves (the GPU); the
    // *_t ones quantize transposes from the source. The calls above use them in the same way.
    struct Fp8Quantizers {
        Quantizer& input;
        Quantizer& weight;
        Quantizer& grad;
        Quantizer& input_t;
        Quantizer& weight_t;
        Quantizer& grad_t;
    };
    Fp8Quantizers fp8_quantizers();

    // The weight's optimizer step, for recipes that predict weight scales (moss).
    void on_optimizer_step(const OptimizerStep& step);
    // Whether the weight's quantizer predicts a bound on its amax (moss): the model then gives it
    // a slot in the backend's memory (Quantizer::bind_bound) and advances the slot after each
    // optimizer step (Ops::advance_weight_bounds).
    bool predicts_weight_bound() const { return weight_ && weight_->predicts_bound(); }
    void bind_weight_bound(double* slot, Memory& memory);
    // Whether each quantizer's next plan is its steady one (Quantizer::plan_is_steady()).
    bool plans_steady() const;

    // The quantizers' states, appended to `out` as [count, values…] per quantizer; restore()
    // consumes the same from `in` starting at `at` (advanced).
    void save_state(std::vector<double>& out) const;
    void restore_state(const std::vector<double>& in, size_t& at);

  private:
    explicit LinearPrecision(Kind kind) : kind_(kind) {}
    Kind kind_;
    std::unique_ptr<Quantizer> input_, weight_, grad_;
    std::unique_ptr<Quantizer> input_t_, weight_t_, grad_t_; // for transposes from the source
    QuantizedTensor x_q_, w_q_, dy_q_, w_t_, dy_t_, x_t_;
    TransposeMethod x_method_{}, w_method_{}, dy_method_{};
    // bf16: rounded operands, reused backward; fp8 with bf16_sources_: x and dy rounded
    std::vector<float> x_bf16_, w_bf16_, dy_bf16_;
    bool bf16_sources_ = false;
    const float* dy_source_ = nullptr;
    int64_t n_ = 0, k_ = 0, m_ = 0;
};

} // namespace octet
