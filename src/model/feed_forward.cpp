// Dense feed-forward layers: GELU MLP (GPT-2) and SwiGLU (Llama).
#include "model/feed_forward.h"

#include "recipe/recipe.h"

namespace octet {

std::unique_ptr<LinearPrecision> make_linear_precision(const PrecisionPolicy& policy,
                                                       bool lm_head) {
    const PrecisionPolicy::Gemm gemm = lm_head ? policy.lm_head : policy.gemm;
    switch (gemm) {
    case PrecisionPolicy::Gemm::fp32:
        return LinearPrecision::exact();
    case PrecisionPolicy::Gemm::bf16:
        return LinearPrecision::bf16();
    default:
        return LinearPrecision::fp8(*make_recipe(policy.gemm_recipe));
    }
}

namespace {

template <typename T>
class DenseFeedForward final : public FeedForward<T> {
  public:
    DenseFeedForward(const ModelConfig& c, int64_t layer, ParameterSet<T>& params, Ops<T>& ops,
                     const PrecisionPolicy& policy, FeedForwardScratch<T>& shared)
        : params_(params), ops_(ops), swiglu_(c.flavor == Flavor::llama), d_model_(c.d_model),
          hidden_(c.ffn_size()), up_precision_(make_linear_precision(policy, false)),
          down_precision_(make_linear_precision(policy, false)), up_(ops.memory()),
          own_act_(ops.memory()), act_(down_precision_->keeps_input() ? shared.act : own_act_),
          d_act_(shared.d_act), d_up_(shared.d_up) {
        const std::string prefix = "h." + std::to_string(layer) + ".mlp.";
        const int64_t up_rows = swiglu_ ? 2 * hidden_ : hidden_;
        up_w_ = params.add(prefix + (swiglu_ ? "gate_up.weight" : "fc.weight"), {up_rows, d_model_},
                           true);
        down_w_ = params.add(prefix + (swiglu_ ? "down.weight" : "proj.weight"),
                             {d_model_, hidden_}, true);
        if (!swiglu_) {
            up_b_ = params.add(prefix + "fc.bias", {up_rows}, false);
            down_b_ = params.add(prefix + "proj.bias", {d_model_}, false);
        }
    }

    // The pre-activations and their gradient are read by the activation alone: BF16 layers
    // write them rounded (and packed where the backend packs them, ops.h).
    void forward(T* out, const T* in, const T* residual, int64_t n) override {
        const int64_t up_rows = swiglu_ ? 2 * hidden_ : hidden_;
        LinearPrecision* up = up_precision_.get();
        LinearPrecision* down = down_precision_.get();
        up_.resize(elementwise_buffer_size(ops_, up, n * up_rows));
        act_.resize(n * hidden_);
        LinearForwardArgs<T> up_args{up_.data(), in, params_.value(up_w_), bias(up_b_), n, d_model_,
                                     up_rows,    up};
        up_args.to_elementwise = true;
        ops_.linear_forward(up_args);
        if (swiglu_)
            ops_.swiglu_forward(act_.data(), up_.data(), n, hidden_, up, down->as_consumer());
        else
            ops_.gelu_forward(act_.data(), up_.data(), n * hidden_, up, down->as_consumer());
        ops_.linear_forward({out, act_.data(), params_.value(down_w_), bias(down_b_), n, hidden_,
                             d_model_, down, nullptr, residual});
    }

    void backward(T* d_in, const T* d_out, const T* in, int64_t n, bool add_to_weights) override {
        const int64_t up_rows = swiglu_ ? 2 * hidden_ : hidden_;
        LinearPrecision* up = up_precision_.get();
        LinearPrecision* down = down_precision_.get();
        d_act_.resize(elementwise_buffer_size(ops_, down, n * hidden_));
        d_up_.resize(n * up_rows);
        LinearBackwardArgs<T> down_args{d_act_.data(),
                                        params_.grad(down_w_),
                                        grad(down_b_),
                                        d_out,
                                        down->backward_input(act_.data()),
                                        params_.value(down_w_),
                                        n,
                                        hidden_,
                                        d_model_,
                                        down};
        down_args.d_in_for_reader = true;
        down_args.add_to_d_weight = add_to_weights;
        ops_.linear_backward(down_args);
        if (swiglu_)
            ops_.swiglu_backward(d_up_.data(), d_act_.data(), up_.data(), n, hidden_, up, down);
        else
            ops_.gelu_backward(d_up_.data(), d_act_.data(), up_.data(), n * hidden_, up, down);
        LinearBackwardArgs<T> up_args{d_in,        params_.grad(up_w_),
                                      grad(up_b_), d_up_.data(),
                                      in,          params_.value(up_w_),
                                      n,           d_model_,
                                      up_rows,     up};
        up_args.d_in_for_reader = true;
        up_args.add_to_d_weight = add_to_weights;
        ops_.linear_backward(up_args);
    }

    std::vector<size_t> weights() const override { return {up_w_, down_w_}; }

    const LinearPrecision& input_consumer() const override { return *up_precision_; }
    const LinearPrecision& output_consumer() const override { return *down_precision_; }

    void for_each_precision(const std::function<void(LinearPrecision&)>& f) const override {
        f(*up_precision_);
        f(*down_precision_);
    }

  private:
    static constexpr size_t none = size_t(-1);
    T* bias(size_t i) { return i == none ? nullptr : params_.value(i); }
    T* grad(size_t i) { return i == none ? nullptr : params_.grad(i); }

    ParameterSet<T>& params_;
    Ops<T>& ops_;
    bool swiglu_;
    int64_t d_model_, hidden_;
    size_t up_w_ = none, up_b_ = none, down_w_ = none, down_b_ = none;
    std::unique_ptr<LinearPrecision> up_precision_, down_precision_;
    Buffer<T> up_, own_act_; // activations of the last forward
    Buffer<T>& act_;         // own_act_, or the layers' shared one
    Buffer<T>& d_act_;       // the backward's scratch, shared by the layers
    Buffer<T>& d_up_;
};

} // namespace

template <typename T>
std::unique_ptr<FeedForward<T>>
make_dense_feed_forward(const ModelConfig& config, int64_t layer, ParameterSet<T>& params,
                        Ops<T>& ops, const PrecisionPolicy& policy, FeedForwardScratch<T>& shared) {
    return std::make_unique<DenseFeedForward<T>>(config, layer, params, ops, policy, shared);
}

template std::unique_ptr<FeedForward<float>>
make_dense_feed_forward(const ModelConfig&, int64_t, ParameterSet<float>&, Ops<float>&,
                        const PrecisionPolicy&, FeedForwardScratch<float>&);
template std::unique_ptr<FeedForward<double>>
make_dense_feed_forward(const ModelConfig&, int64_t, ParameterSet<double>&, Ops<double>&,
                        const PrecisionPolicy&, FeedForwardScratch<double>&);

} // namespace octet
