// AdamW in FP32 or FP8-LM storage (see adamw.h).
#include "optim/adamw.h"

#include <cmath>

#include "common/error.h"

namespace octet {

AdamW::AdamW(Ops<float>& ops, const std::vector<ParamTensor>& tensors, float* params,
             const PrecisionPolicy& policy, AdamWConfig config)
    : ops_(ops), fp32_storage_(policy.fp32_optimizer_storage()), m_(ops.memory()), v_(ops.memory()),
      policy_(policy), config_(config) {
    if (!(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 > 0 && config.beta2 < 1))
        throw Error("optimizer: betas must lie in [0, 1) and (0, 1)");
    if (!(config.eps > 0) || !(config.weight_decay >= 0) || !(config.grad_clip >= 0))
        throw Error("optimizer: eps must be positive, weight_decay and grad_clip non-negative");
    for (const ParamTensor& t : tensors) {
        spans_.push_back({t.offset, t.numel, t.decay});
        total_ += t.numel;
    }
    if (fp32_storage_) {
        m_.resize(total_);
        v_.resize(total_);
        m_.zero();
        v_.zero();
        return;
    }
    if (!ops.memory().host_accessible())
        throw Error("optimizer: FP8-LM's scaled storage (" + policy.describe() +
                    ") runs on the CPU backend only in this version");
    for (const ParamTensor& t : tensors) {
        State s{t, nullptr, ScaledStorage(policy.moment1, t.numel),
                ScaledStorage(policy.moment2, t.numel)};
        if (policy.master != StorageFormat::fp32) {
            s.master = std::make_unique<ScaledStorage>(policy.master, t.numel);
            s.master->store(params + t.offset);
            s.master->load(params + t.offset);
        }
        states_.push_back(std::move(s));
    }
}

double AdamW::step(float* params, float* grads, double lr) {
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
    const double norm = fp32_storage_ ? ops_.adamw_step(params, grads, m_.data(), v_.data(), spans_,
                                                        h, config_.grad_clip)
                                      : scaled_step(params, grads, h);
    last_ = {lr, config_.weight_decay, config_.beta1, config_.beta2, t_};
    return norm;
}

double AdamW::scaled_step(float* params, float* grads, const AdamWHyper& hyper) {
    double sq = 0;
    for (State& s : states_) {
        float* g = grads + s.tensor.offset;
        round_through(policy_.weight_grad, g, s.tensor.numel);
        for (int64_t i = 0; i < s.tensor.numel; ++i) sq += double(g[i]) * double(g[i]);
    }
    const double norm = std::sqrt(sq);
    AdamWHyper h = hyper;
    h.clip = clip_factor(norm, config_.grad_clip);
    std::vector<float> m, v;
    for (State& s : states_) {
        const int64_t n = s.tensor.numel;
        float* w = params + s.tensor.offset;
        const float* g = grads + s.tensor.offset;
        m.resize(size_t(n));
        v.resize(size_t(n));
        s.m.load(m.data());
        s.v.load(v.data());
        if (s.master) s.master->load(w);
        for (int64_t i = 0; i < n; ++i)
            adamw_update(w[i], g[i], m[size_t(i)], v[size_t(i)], h, s.tensor.decay);
        s.m.store(m.data());
        s.v.store(v.data());
        if (s.master) {
            s.master->store(w);
            s.master->load(w);
        }
    }
    return norm;
}

AdamW::Moments AdamW::export_state() const {
    if (fp32_storage_) return {m_.download(), v_.download(), t_};
    Moments out{std::vector<float>(size_t(total_)), std::vector<float>(size_t(total_)), t_};
    for (const State& s : states_) {
        s.m.load(out.m.data() + s.tensor.offset);
        s.v.load(out.v.data() + s.tensor.offset);
    }
    return out;
}

void AdamW::import_state(const Moments& state, const float* params) {
    if (int64_t(state.m.size()) != total_ || int64_t(state.v.size()) != total_ || state.step < 0)
        throw Error("checkpoint: optimizer state does not match the model's " +
                    std::to_string(total_) + " parameters");
    t_ = state.step;
    if (fp32_storage_) {
        m_.upload(state.m.data(), total_);
        v_.upload(state.v.data(), total_);
        return;
    }
    for (State& s : states_) {
        s.m.store(state.m.data() + s.tensor.offset);
        s.v.store(state.v.data() + s.tensor.offset);
        if (s.master) s.master->store(params + s.tensor.offset);
    }
}

double AdamW::bytes_per_parameter() const {
    if (fp32_storage_) return total_ ? 16.0 : 0.0;
    size_t bytes = 0;
    for (const State& s : states_)
        bytes += (s.master ? s.master->bytes() : size_t(s.tensor.numel) * 4) + s.m.bytes() +
                 s.v.bytes() +
                 size_t(s.tensor.numel) * size_t(storage_format_bytes(policy_.weight_grad));
    return total_ ? double(bytes) / double(total_) : 0.0;
}

} // namespace octet
