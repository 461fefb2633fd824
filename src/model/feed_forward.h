// The feed-forward half of a transformer block, behind an interface so that a Mixture-of-Experts
// layer can take the dense one's place. Dense flavours: GELU MLP (GPT-2, with biases) and SwiGLU
// (Llama, without).
#pragma once

#include <functional>
#include <memory>

#include "model/config.h"
#include "model/parameters.h"
#include "ops/linear_precision.h"
#include "ops/ops.h"
#include "recipe/policy.h"

namespace octet {

template <typename T>
class FeedForward {
  public:
    virtual ~FeedForward() = default;
    // out [n, C] = residual + ffn(in [n, C]); keeps what the backward needs.
    virtual void forward(T* out, const T* in, const T* residual, int64_t n) = 0;
    // Writes d_in [n, C] for the norm below, which reads it as written by input_consumer()
    // (LinearBackwardArgs::d_in_for_reader: sized by elementwise_buffer_size()), and accumulates
    // the parameter gradients, but for the weights() gradients where !add_to_weights: those it
    // writes. `in` is the forward's, or nullptr where input_consumer() keeps its own copy of it.
    virtual void backward(T* d_in, const T* d_out, const T* in, int64_t n, bool add_to_weights) = 0;
    // The parameters (indices) its linear layers' weights are: what backward() may write.
    virtual std::vector<size_t> weights() const = 0;
    // The linear layer that reads the input, and the one whose backward reads d_out.
    virtual const LinearPrecision& input_consumer() const = 0;
    virtual const LinearPrecision& output_consumer() const = 0;
    // Its linear layers' precisions, in a fixed order (checkpoints keep their recipe state so).
    virtual void for_each_precision(const std::function<void(LinearPrecision&)>& f) const = 0;
};

// What the feed-forwards of all layers share: the hidden activations where the down projection
// keeps its own copy of them (LinearPrecision::keeps_input()), and the backward's gradients of
// the hidden layer, which live only while one layer's backward runs. The up projection's output
// gradient takes the shared activations' memory: no backward reads those.
template <typename T>
struct FeedForwardScratch {
    explicit FeedForwardScratch(Memory& memory) : act(memory), d_act(memory) {}
    Buffer<T> act, d_act;
    Buffer<T>& d_up = act;
};

// The dense feed-forward of layer `layer`, its parameters registered in `params`.
template <typename T>
std::unique_ptr<FeedForward<T>>
make_dense_feed_forward(const ModelConfig& config, int64_t layer, ParameterSet<T>& params,
                        Ops<T>& ops, const PrecisionPolicy& policy, FeedForwardScratch<T>& shared);

// The LinearPrecision a policy gives its linear layers (or its LM head).
std::unique_ptr<LinearPrecision> make_linear_precision(const PrecisionPolicy& policy, bool lm_head);

} // namespace octet
