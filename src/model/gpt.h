// A GPT language model, GPT-2 or Llama-style (model/config.h), forward and backward on the ops
// interface. Each block: x + attn(norm(x)), then + ffn(norm(·)); the feed-forward is a
// FeedForward, so a MoE layer can replace it. The linear layers run under the precision
// policy; embeddings, norms, attention and the loss stay in high precision.
//
// Usage per step (TrainStep, train/train_step.h, runs it): loss = forward(tokens, targets, B, T);
// backward(Gradients::overwrite), then backward() for further micro-batches; the optimizer
// updates params(), then advance_weight_bounds() and on_optimizer_step(). forward() is set_batch(),
// which puts the batch in the backend's memory, forward_batch(), which only issues ops (so a
// backend may record it: Ops::record()), and batch_loss(), which reads the loss back.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/feed_forward.h"
#include "model/parameters.h"
#include "ops/ops.h"
#include "recipe/policy.h"

namespace octet {

template <typename T>
class Gpt {
  public:
    // Parameters initialised as in GPT-2 / nanoGPT from `seed`: N(0, 0.02) for matrices and
    // embeddings, N(0, 0.02/√(2L)) for the projections into the residual stream, zero biases,
    // unit norm weights.
    Gpt(const ModelConfig& config, Ops<T>& ops, const PrecisionPolicy& policy, uint64_t seed);
    ~Gpt();
    Gpt(const Gpt&) = delete;
    Gpt& operator=(const Gpt&) = delete;

    const ModelConfig& config() const { return config_; }
    ParameterSet<T>& params() { return params_; }

    // Mean cross-entropy of next-token prediction over B × T positions (T ≤ seq_len); targets
    // may be nullptr to compute logits only.
    T forward(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq);
    void set_batch(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq);
    void forward_batch();
    // The mean loss of the last forward of a batch with targets.
    T batch_loss() const;
    // d(mean loss)/d(parameters) of the last forward: added to params().grads() (`accumulate`),
    // or in their place (`overwrite`, a step's first micro-batch: no zero_grads() before it).
    // Overwriting, the linear layers write their weights' gradients (their wgrad GEMMs read no
    // old gradient), and only the other gradients, a few percent of them, are zeroed first.
    enum class Gradients { accumulate, overwrite };
    void backward(Gradients gradients = Gradients::accumulate);
    void zero_grads() { params_.zero_grads(); }
    // Row `row` of the last forward's [B·T, V] logits, copied to the host. That forward must
    // have had no targets (Error otherwise: the loss overwrote the logits with their gradient).
    std::vector<T> logits_row(int64_t row) const;

    // MOSS's weight-scale prediction, in two parts. advance_weight_bounds() issues, after the
    // optimizer's update and recorded with it, the op that moves every predicted bound by that
    // update (`h`: its hyperparameters, in the backend's memory). on_optimizer_step() then tells
    // the quantizers on the host (their re-sync schedule) that a step was taken.
    void advance_weight_bounds(const AdamWHyper* h);
    void on_optimizer_step(const OptimizerStep& step);
    // Whether every linear layer's next plans are the ones it gave before (Quantizer::
    // plan_is_steady()): a recorded forward and backward replays those.
    bool plans_steady() const;

    // The recipe state of every linear layer, for checkpoints (throws Error on a mismatch).
    std::vector<double> recipe_state() const;
    void set_recipe_state(const std::vector<double>& state);

  private:
    struct Layer;
    // Every linear layer's precision: per block qkv, proj, the feed-forward's; then the head
    // (the order of recipe_state()).
    void for_each_precision(const std::function<void(LinearPrecision&)>& f) const;
    // Gives each weight quantizer that predicts a bound its slot in weight_bounds_.
    void bind_weight_bounds();
    // Zeroes the gradients a backward adds to: all but the linear layers' weights, which an
    // overwriting backward writes (GPT-2's tied wte too: the LM head writes it first).
    void zero_added_grads();
    // Where a linear layer's input is written: `own`, kept for the backward, or linear_in_ when
    // the layer keeps its own copy (LinearPrecision::backward_input()).
    T* linear_input(Buffer<T>& own, const LinearPrecision& consumer, int64_t size);
    T* value(size_t i) { return params_.value(i); }
    T* grad(size_t i) { return params_.grad(i); }
    T* head_weight() { return value(lm_head_); }

    ModelConfig config_;
    Ops<T>& ops_;
    bool bf16_attention_; // attention in BF16 where the backend can (every policy but fp32)
    ParameterSet<T> params_;
    size_t wte_, wpe_ = size_t(-1), lnf_w_, lnf_b_ = size_t(-1), lm_head_;
    std::vector<std::unique_ptr<Layer>> layers_;
    std::unique_ptr<LinearPrecision> head_precision_;
    Buffer<double> weight_bounds_; // MOSS's predicted weight bounds (Quantizer::bind_bound)
    std::vector<std::pair<int64_t, int64_t>> added_grads_; // (offset, count): zero_added_grads()

    // The last forward's inputs and activations, in the backend's memory.
    int64_t batch_ = 0, seq_ = 0;
    bool batch_targets_ = false; // the batch set has targets
    bool has_targets_ = false;   // the last forward computed d_logits, not yet consumed
    Buffer<int32_t> tokens_, targets_;
    Buffer<T> residual_out_; // [L + 1][N, C]: the stream entering each layer, and leaving
    Buffer<T> lnf_out_, lnf_mean_, lnf_rstd_;
    Buffer<T> logits_; // the logits; with targets, then the probabilities, then d_logits
    bool logits_readable_ = false; // the last forward had no targets: logits_ holds the logits
    Buffer<T> losses_;
    // The inputs [N, C] of linear layers that keep their own copy (LinearPrecision::keeps_input()):
    // the norms' and the attention's outputs, one buffer for all layers.
    Buffer<T> linear_in_;
    // qkv where no backward reads it: Llama's before RoPE, GPT-2's where attention keeps its own
    // copy (Ops::attention_keeps_input()); Llama's rotated qkv where attention keeps it.
    Buffer<T> qkv_scratch_, rope_scratch_;
    FeedForwardScratch<T> ffn_scratch_;
    // Scratch of the backward, kept to avoid allocations every step.
    Buffer<T> d_lnf_, d_x_, d_ln2_, d_ln1_;
    // The backward's gradients of the attention's output, qkv and rotated qkv, in the memory of
    // the forward's scratch of the same sizes: no backward reads that scratch (its readers keep
    // what they need), so the two never live at once.
    Buffer<T>& d_attn_ = linear_in_;
    Buffer<T>& d_qkv_ = qkv_scratch_;
    Buffer<T>& d_rope_ = rope_scratch_;
};

extern template class Gpt<float>;
extern template class Gpt<double>;

} // namespace octet
