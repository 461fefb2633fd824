// GPT forward and backward (see gpt.h). The backward walks the blocks in reverse, accumulating
// gradients through the residual stream as llm.c does.
#include "model/gpt.h"

#include <cmath>

#include "common/error.h"
#include "common/rng.h"

namespace octet {

namespace {

// b, holding `size` elements (contents unspecified: the op given it writes them).
template <typename T>
T* sized(Buffer<T>& b, int64_t size) {
    b.resize(size);
    return b.data();
}

} // namespace

template <typename T>
struct Gpt<T>::Layer {
    static constexpr size_t none = size_t(-1);
    size_t ln1_w, ln1_b = none, qkv_w, qkv_b = none, proj_w, proj_b = none, ln2_w, ln2_b = none;
    std::unique_ptr<LinearPrecision> qkv_precision, proj_precision;
    std::unique_ptr<FeedForward<T>> ffn;
    // Activations of the last forward.
    explicit Layer(Memory& m)
        : ln1_out(m), ln1_mean(m), ln1_rstd(m), qkv(m), qkv_rope(m), att(m), attn_out(m),
          after_attn(m), ln2_out(m), ln2_mean(m), ln2_rstd(m) {}
    Buffer<T> ln1_out, ln1_mean, ln1_rstd, qkv, qkv_rope, att, attn_out, after_attn;
    Buffer<T> ln2_out, ln2_mean, ln2_rstd;
};

template <typename T>
Gpt<T>::Gpt(const ModelConfig& config, Ops<T>& ops, const PrecisionPolicy& policy, uint64_t seed)
    : config_(config), ops_(ops), bf16_attention_(policy.gemm != PrecisionPolicy::Gemm::fp32),
      weight_bounds_(ops.memory()), tokens_(ops.memory()), targets_(ops.memory()),
      residual_out_(ops.memory()), lnf_out_(ops.memory()), lnf_mean_(ops.memory()),
      lnf_rstd_(ops.memory()), logits_(ops.memory()), losses_(ops.memory()),
      linear_in_(ops.memory()), qkv_scratch_(ops.memory()), rope_scratch_(ops.memory()),
      ffn_scratch_(ops.memory()), d_lnf_(ops.memory()), d_x_(ops.memory()), d_ln2_(ops.memory()),
      d_ln1_(ops.memory()) {
    config_.validate();
    const ModelConfig& c = config_;
    const bool gpt2 = c.flavor == Flavor::gpt2;
    wte_ = params_.add("wte", {c.vocab_size, c.d_model}, true);
    if (gpt2) wpe_ = params_.add("wpe", {c.seq_len, c.d_model}, true);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        auto layer = std::make_unique<Layer>(ops.memory());
        const std::string p = "h." + std::to_string(l) + ".";
        layer->ln1_w = params_.add(p + "ln_1.weight", {c.d_model}, false);
        if (gpt2) layer->ln1_b = params_.add(p + "ln_1.bias", {c.d_model}, false);
        layer->qkv_w = params_.add(p + "attn.qkv.weight", {3 * c.d_model, c.d_model}, true);
        if (gpt2) layer->qkv_b = params_.add(p + "attn.qkv.bias", {3 * c.d_model}, false);
        layer->proj_w = params_.add(p + "attn.proj.weight", {c.d_model, c.d_model}, true);
        if (gpt2) layer->proj_b = params_.add(p + "attn.proj.bias", {c.d_model}, false);
        layer->ln2_w = params_.add(p + "ln_2.weight", {c.d_model}, false);
        if (gpt2) layer->ln2_b = params_.add(p + "ln_2.bias", {c.d_model}, false);
        layer->ffn = make_dense_feed_forward<T>(c, l, params_, ops_, policy, ffn_scratch_);
        layer->qkv_precision = make_linear_precision(policy, false);
        layer->proj_precision = make_linear_precision(policy, false);
        layers_.push_back(std::move(layer));
    }
    lnf_w_ = params_.add("ln_f.weight", {c.d_model}, false);
    if (gpt2) lnf_b_ = params_.add("ln_f.bias", {c.d_model}, false);
    lm_head_ = gpt2 ? wte_ : params_.add("lm_head.weight", {c.vocab_size, c.d_model}, true);
    head_precision_ = make_linear_precision(policy, true);
    bind_weight_bounds();

    // Initialisation on the host, in registration order so a seed names the same model on every
    // backend.
    std::vector<T> init(size_t(params_.size()));
    Rng rng(seed);
    const double residual_std = 0.02 / std::sqrt(2.0 * double(c.n_layer));
    for (const ParamTensor& t : params_.tensors()) {
        T* v = init.data() + t.offset;
        const bool norm_weight =
            t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
        const bool bias = t.name.ends_with(".bias");
        const bool residual = t.name.ends_with("attn.proj.weight") ||
                              t.name.ends_with("mlp.proj.weight") ||
                              t.name.ends_with("mlp.down.weight");
        for (int64_t i = 0; i < t.numel; ++i)
            v[i] = norm_weight ? T(1)
                   : bias      ? T(0)
                               : T(rng.normal() * (residual ? residual_std : 0.02));
    }
    params_.allocate(ops.memory(), init);
}

template <typename T>
Gpt<T>::~Gpt() = default;

template <typename T>
T* Gpt<T>::linear_input(Buffer<T>& own, const LinearPrecision& consumer, int64_t size) {
    return sized(consumer.keeps_input() ? linear_in_ : own, size);
}

template <typename T>
void Gpt<T>::set_batch(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq) {
    const ModelConfig& c = config_;
    if (batch <= 0 || seq <= 0 || seq > c.seq_len)
        throw Error("forward: batch " + std::to_string(batch) + " x sequence " +
                    std::to_string(seq) + " does not fit the model (sequence length at most " +
                    std::to_string(c.seq_len) + ")");
    const int64_t n = batch * seq;
    // Checked here, on the host: a backend's kernels would index out of bounds.
    for (const int32_t* ids : {tokens, targets})
        for (int64_t i = 0; ids && i < n; ++i)
            if (ids[i] < 0 || ids[i] >= c.vocab_size)
                throw Error(std::string("forward: ") + (ids == tokens ? "token " : "target ") +
                            std::to_string(ids[i]) + " at position " + std::to_string(i) +
                            " is outside the vocabulary of " + std::to_string(c.vocab_size));
    batch_ = batch;
    seq_ = seq;
    tokens_.upload(tokens, n);
    batch_targets_ = targets != nullptr;
    if (targets) targets_.upload(targets, n);
}

template <typename T>
T Gpt<T>::forward(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq) {
    set_batch(tokens, targets, batch, seq);
    forward_batch();
    return targets ? batch_loss() : T(0);
}

template <typename T>
void Gpt<T>::forward_batch() {
    if (batch_ == 0) throw Error("forward_batch: no batch was set (set_batch)");
    const ModelConfig& c = config_;
    const int64_t batch = batch_, seq = seq_, n = batch * seq, C = c.d_model;
    const bool targets = batch_targets_;
    has_targets_ = targets;
    const AttentionShape shape{batch, seq, c.n_head, c.head_size(), bf16_attention_};
    const bool gpt2 = c.flavor == Flavor::gpt2;
    // Attention's input is kept for its backward (L.qkv, or L.qkv_rope where RoPE rotates it)
    // unless the backend's attention keeps its own copy; Llama's unrotated qkv never is.
    const bool attention_keeps = ops_.attention_keeps_input(shape);
    residual_out_.resize((c.n_layer + 1) * n * C);
    ops_.embedding_forward(residual_out_.data(), tokens_.data(), value(wte_),
                           wpe_ == Layer::none ? nullptr : value(wpe_), batch, seq, C);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        Layer& L = *layers_[size_t(l)];
        const T* x = residual_out_.data() + l * n * C;
        T* out = residual_out_.data() + (l + 1) * n * C;
        L.ln1_mean.resize(n);
        L.ln1_rstd.resize(n);
        T* qkv = sized(gpt2 && !attention_keeps ? L.qkv : qkv_scratch_, n * 3 * C);
        L.att.resize(ops_.attention_state_size(shape));
        L.after_attn.resize(n * C);
        L.ln2_mean.resize(n);
        L.ln2_rstd.resize(n);

        T* ln1_out = linear_input(L.ln1_out, *L.qkv_precision, n * C);
        if (gpt2)
            ops_.layernorm_forward(ln1_out, L.ln1_mean.data(), L.ln1_rstd.data(), x, value(L.ln1_w),
                                   value(L.ln1_b), n, C, c.norm_eps,
                                   L.qkv_precision->as_consumer());
        else
            ops_.rmsnorm_forward(ln1_out, L.ln1_rstd.data(), x, value(L.ln1_w), n, C, c.norm_eps,
                                 L.qkv_precision->as_consumer());
        const AttentionConsumer<T> attention{L.att.data(), shape}; // reads qkv (GPT-2) next
        ops_.linear_forward({qkv, ln1_out, value(L.qkv_w),
                             L.qkv_b == Layer::none ? nullptr : value(L.qkv_b), n, C, 3 * C,
                             L.qkv_precision.get(), gpt2 ? &attention : nullptr});
        const T* attn_in = qkv;
        if (!gpt2) {
            T* rotated = sized(attention_keeps ? rope_scratch_ : L.qkv_rope, n * 3 * C);
            ops_.rope_forward(rotated, qkv, shape, c.rope_base);
            attn_in = rotated;
        }
        T* attn_out = linear_input(L.attn_out, *L.proj_precision, n * C);
        ops_.attention_forward(attn_out, L.att.data(), attn_in, shape,
                               L.proj_precision->as_consumer());
        ops_.linear_forward({L.after_attn.data(), attn_out, value(L.proj_w),
                             L.proj_b == Layer::none ? nullptr : value(L.proj_b), n, C, C,
                             L.proj_precision.get(), nullptr, x});

        T* ln2_out = linear_input(L.ln2_out, L.ffn->input_consumer(), n * C);
        if (gpt2)
            ops_.layernorm_forward(ln2_out, L.ln2_mean.data(), L.ln2_rstd.data(),
                                   L.after_attn.data(), value(L.ln2_w), value(L.ln2_b), n, C,
                                   c.norm_eps, L.ffn->input_consumer().as_consumer());
        else
            ops_.rmsnorm_forward(ln2_out, L.ln2_rstd.data(), L.after_attn.data(), value(L.ln2_w), n,
                                 C, c.norm_eps, L.ffn->input_consumer().as_consumer());
        L.ffn->forward(out, ln2_out, L.after_attn.data(), n);
    }

    const T* x = residual_out_.data() + c.n_layer * n * C;
    lnf_mean_.resize(n);
    lnf_rstd_.resize(n);
    T* lnf_out = linear_input(lnf_out_, *head_precision_, n * C);
    if (gpt2)
        ops_.layernorm_forward(lnf_out, lnf_mean_.data(), lnf_rstd_.data(), x, value(lnf_w_),
                               value(lnf_b_), n, C, c.norm_eps, head_precision_->as_consumer());
    else
        ops_.rmsnorm_forward(lnf_out, lnf_rstd_.data(), x, value(lnf_w_), n, C, c.norm_eps,
                             head_precision_->as_consumer());
    // With targets the loss alone reads the logits: a BF16 head writes them rounded (ops.h);
    // without, they are kept in T for logits_row().
    LinearForwardArgs<T> head{nullptr, lnf_out, head_weight(), nullptr,
                              n,       C,       c.vocab_size,  head_precision_.get()};
    head.to_elementwise = targets;
    logits_readable_ = !targets;
    logits_.resize(head.to_elementwise
                       ? elementwise_buffer_size(ops_, head.precision, n * c.vocab_size)
                       : n * c.vocab_size);
    head.out = logits_.data();
    ops_.linear_forward(head);
    if (!targets) return;
    losses_.resize(n);
    // In place: logits_ now holds the gradient of the mean loss, which the backward starts from.
    ops_.softmax_xent(losses_.data(), logits_.data(), logits_.data(), targets_.data(),
                      T(1.0 / double(n)), n, c.vocab_size, head_precision_.get());
}

template <typename T>
T Gpt<T>::batch_loss() const {
    if (!batch_targets_) throw Error("batch_loss: the batch set has no targets");
    double sum = 0;
    for (T l : losses_.download()) sum += double(l);
    return T(sum / double(losses_.size()));
}

template <typename T>
std::vector<T> Gpt<T>::logits_row(int64_t row) const {
    const int64_t v = config_.vocab_size;
    if (!logits_readable_)
        throw Error("logits_row: the last forward had targets, so its logits became their "
                    "gradient; run one without targets");
    if (row < 0 || (row + 1) * v > logits_.size())
        throw Error("logits_row: row " + std::to_string(row) + " is outside the last forward");
    std::vector<T> out(static_cast<size_t>(v));
    logits_.memory().to_host(out.data(), logits_.data() + row * v, size_t(v) * sizeof(T));
    return out;
}

template <typename T>
void Gpt<T>::zero_added_grads() {
    if (added_grads_.empty()) {
        std::vector<bool> written(params_.tensors().size(), false);
        written[lm_head_] = true;
        for (const auto& L : layers_) {
            written[L->qkv_w] = written[L->proj_w] = true;
            for (size_t w : L->ffn->weights()) written[w] = true;
        }
        for (size_t i = 0; i < written.size(); ++i) {
            if (written[i]) continue;
            const ParamTensor& t = params_.tensors()[i];
            if (!added_grads_.empty() &&
                added_grads_.back().first + added_grads_.back().second == t.offset)
                added_grads_.back().second += t.numel; // adjacent: one memset
            else
                added_grads_.emplace_back(t.offset, t.numel);
        }
    }
    for (auto [offset, count] : added_grads_)
        ops_.memory().zero(params_.grads() + offset, size_t(count) * sizeof(T));
}

template <typename T>
void Gpt<T>::backward(Gradients gradients) {
    if (!has_targets_)
        throw Error("backward: needs a forward with targets before it (one backward per forward)");
    const bool add_to_weights = gradients == Gradients::accumulate;
    if (!add_to_weights) zero_added_grads();
    const ModelConfig& c = config_;
    const int64_t n = batch_ * seq_, C = c.d_model;
    const AttentionShape shape{batch_, seq_, c.n_head, c.head_size(), bf16_attention_};
    const bool gpt2 = c.flavor == Flavor::gpt2;
    const bool attention_keeps = ops_.attention_keeps_input(shape);
    // Backward ops write the gradients of activations (ops.h), so their buffers are only sized.

    has_targets_ = false; // d_logits are consumed: one backward per forward
    // The dgrads feeding a norm's backward write d_out for it alone (d_in_for_reader), in half
    // their buffer where the layer packs it.
    auto norm_d_out = [&](Buffer<T>& buffer, const LinearPrecision& reader) {
        return sized(buffer, elementwise_buffer_size(ops_, &reader, n * C));
    };
    LinearBackwardArgs<T> head{norm_d_out(d_lnf_, *head_precision_),
                               grad(lm_head_),
                               nullptr,
                               logits_.data(),
                               head_precision_->backward_input(lnf_out_.data()),
                               head_weight(),
                               n,
                               C,
                               c.vocab_size,
                               head_precision_.get()};
    head.d_in_for_reader = true;
    head.add_to_d_weight = add_to_weights; // GPT-2's tied wte: the embedding adds to it later
    ops_.linear_backward(head);
    // d_x_: the gradient of the residual stream, to which the norms add as the backward passes
    // them (a layer's backward reads it as d_out before its norm adds to it).
    const T* x_last = residual_out_.data() + c.n_layer * n * C;
    d_x_.resize(n * C);
    d_x_.zero();
    // The linear layer whose backward reads the residual stream's gradient next: the last
    // feed-forward's down projection, then each layer's attention projection and the
    // feed-forward of the layer below; none below the first layer (the embedding).
    auto below = [&](int64_t l) {
        return l > 0 ? layers_[size_t(l - 1)]->ffn->output_consumer().as_consumer() : nullptr;
    };
    if (gpt2)
        ops_.layernorm_backward(d_x_.data(), grad(lnf_w_), grad(lnf_b_), d_lnf_.data(), x_last,
                                value(lnf_w_), lnf_mean_.data(), lnf_rstd_.data(), n, C,
                                head_precision_.get(), below(c.n_layer));
    else
        ops_.rmsnorm_backward(d_x_.data(), grad(lnf_w_), d_lnf_.data(), x_last, value(lnf_w_),
                              lnf_rstd_.data(), n, C, head_precision_.get(), below(c.n_layer));

    for (int64_t l = c.n_layer - 1; l >= 0; --l) {
        Layer& L = *layers_[size_t(l)];
        const T* x = residual_out_.data() + l * n * C;
        // out = after_attn + ffn(norm2(after_attn)): d_after_attn = d_x + through the ffn, which
        // the norm adds to d_x_ in place.
        const LinearPrecision& ffn_in = L.ffn->input_consumer();
        L.ffn->backward(norm_d_out(d_ln2_, ffn_in), d_x_.data(),
                        ffn_in.backward_input(L.ln2_out.data()), n, add_to_weights);
        if (gpt2)
            ops_.layernorm_backward(d_x_.data(), grad(L.ln2_w), grad(L.ln2_b), d_ln2_.data(),
                                    L.after_attn.data(), value(L.ln2_w), L.ln2_mean.data(),
                                    L.ln2_rstd.data(), n, C, &ffn_in,
                                    L.proj_precision->as_consumer());
        else
            ops_.rmsnorm_backward(d_x_.data(), grad(L.ln2_w), d_ln2_.data(), L.after_attn.data(),
                                  value(L.ln2_w), L.ln2_rstd.data(), n, C, &ffn_in,
                                  L.proj_precision->as_consumer());

        // after_attn = x + proj(attn(norm1(x))): d_x_in = d_after + through the attention, again
        // added to d_x_ in place.
        const AttentionConsumer<T> attention{nullptr, shape}; // reads d_attn_ next
        LinearBackwardArgs<T> proj{sized(d_attn_, n * C),
                                   grad(L.proj_w),
                                   L.proj_b == Layer::none ? nullptr : grad(L.proj_b),
                                   d_x_.data(),
                                   L.proj_precision->backward_input(L.attn_out.data()),
                                   value(L.proj_w),
                                   n,
                                   C,
                                   C,
                                   L.proj_precision.get(),
                                   &attention};
        proj.add_to_d_weight = add_to_weights;
        ops_.linear_backward(proj);
        sized(d_qkv_, n * 3 * C);
        const T* attn_in = attention_keeps ? nullptr : gpt2 ? L.qkv.data() : L.qkv_rope.data();
        if (!gpt2) {
            ops_.attention_backward(sized(d_rope_, n * 3 * C), d_attn_.data(), attn_in,
                                    L.att.data(), shape, nullptr);
            ops_.rope_backward(d_qkv_.data(), d_rope_.data(), shape, c.rope_base,
                               L.qkv_precision->as_consumer());
        } else {
            ops_.attention_backward(d_qkv_.data(), d_attn_.data(), attn_in, L.att.data(), shape,
                                    L.qkv_precision->as_consumer());
        }
        LinearBackwardArgs<T> qkv{norm_d_out(d_ln1_, *L.qkv_precision),
                                  grad(L.qkv_w),
                                  L.qkv_b == Layer::none ? nullptr : grad(L.qkv_b),
                                  d_qkv_.data(),
                                  L.qkv_precision->backward_input(L.ln1_out.data()),
                                  value(L.qkv_w),
                                  n,
                                  C,
                                  3 * C,
                                  L.qkv_precision.get()};
        qkv.d_in_for_reader = true;
        qkv.add_to_d_weight = add_to_weights;
        ops_.linear_backward(qkv);
        if (gpt2)
            ops_.layernorm_backward(d_x_.data(), grad(L.ln1_w), grad(L.ln1_b), d_ln1_.data(), x,
                                    value(L.ln1_w), L.ln1_mean.data(), L.ln1_rstd.data(), n, C,
                                    L.qkv_precision.get(), below(l));
        else
            ops_.rmsnorm_backward(d_x_.data(), grad(L.ln1_w), d_ln1_.data(), x, value(L.ln1_w),
                                  L.ln1_rstd.data(), n, C, L.qkv_precision.get(), below(l));
    }
    ops_.embedding_backward(grad(wte_), wpe_ == Layer::none ? nullptr : grad(wpe_), d_x_.data(),
                            tokens_.data(), batch_, seq_, C);
}

template <typename T>
void Gpt<T>::for_each_precision(const std::function<void(LinearPrecision&)>& f) const {
    for (const auto& L : layers_) {
        f(*L->qkv_precision);
        f(*L->proj_precision);
        L->ffn->for_each_precision(f);
    }
    f(*head_precision_);
}

template <typename T>
void Gpt<T>::bind_weight_bounds() {
    int64_t count = 0;
    for_each_precision([&](LinearPrecision& p) { count += p.predicts_weight_bound(); });
    if (count == 0) return;
    weight_bounds_.resize(count);
    weight_bounds_.zero(); // each is set to its weight's amax at its first quantization
    double* slot = weight_bounds_.data();
    for_each_precision([&](LinearPrecision& p) {
        if (p.predicts_weight_bound()) p.bind_weight_bound(slot++, ops_.memory());
    });
}

template <typename T>
void Gpt<T>::advance_weight_bounds(const AdamWHyper* h) {
    if (!weight_bounds_.empty())
        ops_.advance_weight_bounds(weight_bounds_.data(), weight_bounds_.size(), h);
}

template <typename T>
void Gpt<T>::on_optimizer_step(const OptimizerStep& step) {
    for_each_precision([&](LinearPrecision& p) { p.on_optimizer_step(step); });
}

template <typename T>
bool Gpt<T>::plans_steady() const {
    bool steady = true;
    for_each_precision([&](LinearPrecision& p) { steady = steady && p.plans_steady(); });
    return steady;
}

template <typename T>
std::vector<double> Gpt<T>::recipe_state() const {
    std::vector<double> out;
    for_each_precision([&](LinearPrecision& p) { p.save_state(out); });
    return out;
}

template <typename T>
void Gpt<T>::set_recipe_state(const std::vector<double>& state) {
    size_t at = 0;
    for_each_precision([&](LinearPrecision& p) { p.restore_state(state, at); });
    if (at != state.size()) throw Error("checkpoint: recipe state is longer than the model needs");
}

template class Gpt<float>;
template class Gpt<double>;

} // namespace octet
