// AdamW in FP32 or FP8-LM storage (see adamw.h).
#include "optim/adamw.h"

#include <cmath>

#include "common/error.h"
#include "recipe/moss_weight_scaling.h"

namespace octet {

// Zero codes decode to zero in every format, under any scale.
AdamW::Stored::Stored(Memory& memory, StorageFormat f, int64_t total, size_t tensors)
    : format(f), codes(memory, total * storage_format_bytes(f)), scale_inv(memory) {
    codes.zero();
    const std::vector<float> ones(tensors, 1.0f);
    scale_inv.upload(ones.data(), int64_t(tensors));
}

AdamW::AdamW(Ops<float>& ops, const std::vector<ParamTensor>& tensors, float* params,
             const PrecisionPolicy& policy, AdamWConfig config)
    : ops_(ops),
      plain_step_(policy.master == StorageFormat::fp32 &&
                  policy.weight_grad == StorageFormat::fp32 &&
                  plain_moment_format(policy.moment1) && plain_moment_format(policy.moment2)),
      moments_{moment_roundoff(policy.moment1), moment_roundoff(policy.moment2)}, policy_(policy),
      config_(config), hyper_(ops.memory()), norm_(ops.memory(), 2) {
    if (!(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 > 0 && config.beta2 < 1))
        throw Error("optimizer: betas must lie in [0, 1) and (0, 1)");
    if (!(config.eps > 0) || !(config.weight_decay >= 0) || !(config.grad_clip >= 0))
        throw Error("optimizer: eps must be positive, weight_decay and grad_clip non-negative");
    for (const ParamTensor& t : tensors) {
        spans_.push_back({t.offset, t.numel, t.decay});
        total_ += t.numel;
    }
    Memory& memory = ops.memory();
    m_ = std::make_unique<Stored>(memory, policy.moment1, total_, spans_.size());
    v_ = std::make_unique<Stored>(memory, policy.moment2, total_, spans_.size());
    if (policy.master == StorageFormat::fp32) return;
    master_ = std::make_unique<Stored>(memory, policy.master, total_, spans_.size());
    ops.store_scaled(master_->view(), params, spans_);
    ops.load_scaled(params, master_->view(), spans_);
}

ScaledAdamWState AdamW::scaled_state() {
    ScaledAdamWState s;
    s.weight_grad = policy_.weight_grad;
    if (master_) s.master = master_->view();
    s.m = m_->view();
    s.v = v_->view();
    return s;
}

void AdamW::prepare(double lr) {
    if (!(lr >= 0)) throw Error("optimizer: learning rate must be non-negative");
    ++t_;
    AdamWHyper h;
    h.lr = float(lr);
    h.beta1 = float(config_.beta1);
    h.beta2 = float(config_.beta2);
    h.eps = float(config_.eps);
    h.bias1 = float(1.0 - std::pow(config_.beta1, double(t_)));
    h.bias2 = float(1.0 - std::pow(config_.beta2, double(t_)));
    h.decay = float(1.0 - lr * config_.weight_decay);
    h.clip = 1.0;
    // β1² ≥ β2 (or scaled moments) leaves |m̂/√v̂| unbounded; MOSS then refuses the step
    // (WeightBoundSchedule).
    h.max_update = adam_update_bounded(config_.beta1, config_.beta2, moments_)
                       ? adam_update_bound(config_.beta1, config_.beta2, t_, moments_)
                       : HUGE_VAL;
    hyper_.upload(&h, 1);
    last_ = {lr, config_.weight_decay, config_.beta1, config_.beta2, t_, moments_};
}

void AdamW::enqueue(float* params, float* grads) {
    if (hyper_.empty()) throw Error("optimizer: enqueue() needs a prepare() before it");
    if (plain_step_)
        ops_.adamw_step(params, grads, {m_->format, m_->codes.data()},
                        {v_->format, v_->codes.data()}, spans_, hyper_.data(), config_.grad_clip,
                        norm_.data());
    else
        ops_.adamw_step_scaled(params, grads, scaled_state(), spans_, hyper_.data(),
                               config_.grad_clip, norm_.data());
}

double AdamW::grad_norm() const {
    double norm = 0;
    norm_.memory().to_host(&norm, norm_.data(), sizeof norm);
    return norm;
}

AdamW::Moments AdamW::export_state() const {
    Moments out{{}, {}, t_};
    Buffer<float> decoded(ops_.memory(), total_);
    for (auto [stored, host] : {std::pair{m_.get(), &out.m}, std::pair{v_.get(), &out.v}}) {
        ops_.load_scaled(decoded.data(), stored->view(), spans_);
        *host = decoded.download();
    }
    return out;
}

void AdamW::import_state(const Moments& state, const float* params) {
    if (int64_t(state.m.size()) != total_ || int64_t(state.v.size()) != total_ || state.step < 0)
        throw Error("checkpoint: optimizer state does not match the model's " +
                    std::to_string(total_) + " parameters");
    t_ = state.step;
    Buffer<float> values(ops_.memory());
    for (auto [stored, host] : {std::pair{m_.get(), &state.m}, std::pair{v_.get(), &state.v}}) {
        values.upload(host->data(), total_);
        ops_.store_scaled(stored->view(), values.data(), spans_);
    }
    if (master_) ops_.store_scaled(master_->view(), params, spans_);
}

double AdamW::bytes_per_parameter() const {
    if (total_ == 0) return 0.0;
    const size_t master = master_ ? master_->codes.bytes() : size_t(total_) * sizeof(float);
    const size_t grad = size_t(total_) * size_t(storage_format_bytes(policy_.weight_grad));
    return double(master + grad + m_->codes.bytes() + v_->codes.bytes()) / double(total_);
}

} // namespace octet
