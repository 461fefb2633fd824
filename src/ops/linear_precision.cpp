// Operand preparation for linear layers under each precision (see linear_precision.h).
#include "ops/linear_precision.h"

#include "common/error.h"
#include "recipe/transpose.h"

namespace octet {

std::unique_ptr<LinearPrecision> LinearPrecision::exact() {
    return std::unique_ptr<LinearPrecision>(new LinearPrecision(Kind::exact));
}

std::unique_ptr<LinearPrecision> LinearPrecision::bf16() {
    return std::unique_ptr<LinearPrecision>(new LinearPrecision(Kind::bf16));
}

std::unique_ptr<LinearPrecision> LinearPrecision::fp8(const Recipe& recipe) {
    std::unique_ptr<LinearPrecision> p(new LinearPrecision(Kind::fp8));
    p->input_ = recipe.make_quantizer(TensorRole::activation);
    p->weight_ = recipe.make_quantizer(TensorRole::weight);
    p->grad_ = recipe.make_quantizer(TensorRole::gradient);
    p->input_t_ = recipe.make_quantizer(TensorRole::activation);
    p->weight_t_ = recipe.make_quantizer(TensorRole::weight);
    p->grad_t_ = recipe.make_quantizer(TensorRole::gradient);
    p->bf16_sources_ = quantizes_both_in_one_pass(*p->input_, *p->input_t_) &&
                       quantizes_both_in_one_pass(*p->grad_, *p->grad_t_);
    return p;
}

// Quantize x and note how the backward will transpose it.
static QuantizedTensor quantize(Quantizer& q, MatrixView x, TransposeMethod& method) {
    const QuantizePlan plan = q.plan_for(x);
    method = transpose_method(plan, x.rows, x.cols);
    return run_plan(x, plan);
}

static std::vector<float> rounded_bf16(const float* x, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        out[size_t(i)] = round_to_format(x[i], Format::bf16, Overflow::ieee);
    return out;
}

static Error wrong_kind(const char* what) {
    return Error(std::string("LinearPrecision: ") + what +
                 " operands asked of a layer of another precision");
}

void LinearPrecision::forward_operands(const float* x, int64_t n, int64_t k, const float* w,
                                       int64_t m, std::vector<float>& xq, std::vector<float>& wq) {
    if (kind_ != Kind::bf16) throw wrong_kind("BF16");
    n_ = n;
    k_ = k;
    m_ = m;
    xq = rounded_bf16(x, n * k);
    wq = rounded_bf16(w, m * k);
    x_bf16_ = xq;
    w_bf16_ = wq;
}

void LinearPrecision::dgrad_operands(const float* dy, std::vector<float>& dyq,
                                     std::vector<float>& wtq) {
    if (kind_ != Kind::bf16) throw wrong_kind("BF16");
    dyq = rounded_bf16(dy, n_ * m_);
    dy_bf16_ = dyq;
    wtq = transposed(w_bf16_.data(), m_, k_);
}

void LinearPrecision::wgrad_operands(std::vector<float>& dytq, std::vector<float>& xtq) {
    if (kind_ != Kind::bf16) throw wrong_kind("BF16");
    dytq = transposed(dy_bf16_.data(), n_, m_);
    xtq = transposed(x_bf16_.data(), n_, k_);
}

LinearPrecision::Fp8Quantizers LinearPrecision::fp8_quantizers() {
    if (kind_ != Kind::fp8) throw wrong_kind("FP8");
    return {*input_, *weight_, *grad_, *input_t_, *weight_t_, *grad_t_};
}

LinearPrecision::Fp8Operands LinearPrecision::forward_fp8(const float* x, int64_t n, int64_t k,
                                                          const float* w, int64_t m) {
    if (kind_ != Kind::fp8) throw wrong_kind("FP8");
    n_ = n;
    k_ = k;
    m_ = m;
    if (bf16_sources_) {
        x_bf16_ = rounded_bf16(x, n * k);
        x = x_bf16_.data();
    }
    x_q_ = quantize(*input_, {x, n, k}, x_method_);
    w_q_ = quantize(*weight_, {w, m, k}, w_method_);
    // Both orientations from the source, as one pass gives them on the GPU.
    if (bf16_sources_) x_method_ = TransposeMethod::from_source;
    if (x_method_ == TransposeMethod::from_source)
        x_t_ = transpose_for_gemm(x_q_, x_method_, *input_t_, x);
    return {x_q_, w_q_};
}

LinearPrecision::Fp8Operands LinearPrecision::dgrad_fp8(const float* dy, const float* w) {
    if (kind_ != Kind::fp8) throw wrong_kind("FP8");
    dy_source_ = dy;
    if (bf16_sources_) {
        dy_bf16_ = rounded_bf16(dy, n_ * m_);
        dy_source_ = dy_bf16_.data();
    }
    dy_q_ = quantize(*grad_, {dy_source_, n_, m_}, dy_method_);
    if (bf16_sources_) dy_method_ = TransposeMethod::from_source;
    w_t_ = transpose_for_gemm(w_q_, w_method_, *weight_t_, w);
    return {dy_q_, w_t_};
}

LinearPrecision::Fp8Operands LinearPrecision::wgrad_fp8() {
    if (kind_ != Kind::fp8) throw wrong_kind("FP8");
    dy_t_ = transpose_for_gemm(dy_q_, dy_method_, *grad_t_, dy_source_);
    if (x_method_ != TransposeMethod::from_source)
        x_t_ = transpose_for_gemm(x_q_, x_method_, *input_t_, nullptr);
    return {dy_t_, x_t_};
}

void LinearPrecision::save_state(std::vector<double>& out) const {
    for (const auto* q : {&input_, &weight_, &grad_, &input_t_, &weight_t_, &grad_t_}) {
        const std::vector<double> s = *q ? (*q)->state() : std::vector<double>();
        out.push_back(double(s.size()));
        out.insert(out.end(), s.begin(), s.end());
    }
}

void LinearPrecision::restore_state(const std::vector<double>& in, size_t& at) {
    for (auto* q : {&input_, &weight_, &grad_, &input_t_, &weight_t_, &grad_t_}) {
        if (at >= in.size())
            throw Error("checkpoint: recipe state is shorter than the model needs");
        const size_t n = size_t(in[at++]);
        if (at + n > in.size()) throw Error("checkpoint: recipe state is truncated");
        const std::vector<double> s(in.begin() + long(at), in.begin() + long(at + n));
        at += n;
        if (*q)
            (*q)->set_state(s);
        else if (n)
            throw Error("checkpoint: recipe state given to a layer without an FP8 recipe");
    }
}

void LinearPrecision::on_optimizer_step(const OptimizerStep& step) {
    if (weight_) weight_->on_optimizer_step(step);
}

void LinearPrecision::bind_weight_bound(double* slot, Memory& memory) {
    if (!predicts_weight_bound()) throw Error("LinearPrecision: its weight predicts no bound");
    weight_->bind_bound(slot, memory);
}

bool LinearPrecision::plans_steady() const {
    for (const auto* q : {&input_, &weight_, &grad_, &input_t_, &weight_t_, &grad_t_})
        if (*q && !(*q)->plan_is_steady()) return false;
    return true;
}

} // namespace octet
