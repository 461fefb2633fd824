// AdamW in FP32 or FP8-LM storage (see adamw.h).
#include "optim/adamw.h"

#include <cmath>

#include "common/error.h"

namespace octet {

AdamW::AdamW(const std::vector<ParamTensor>& tensors, float* params, const PrecisionPolicy& policy,
             AdamWConfig config)
    : policy_(policy), config_(config) {
    if (!(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 > 0 && config.beta2 < 1))
        throw Error("optimizer: betas must lie in [0, 1) and (0, 1)");
    if (!(config.eps > 0) || !(config.weight_decay >= 0) || !(config.grad_clip >= 0))
        throw Error("optimizer: eps must be positive, weight_decay and grad_clip non-negative");
    for (const ParamTensor& t : tensors) {
        State s{t, nullptr, ScaledStorage(policy.moment1, t.numel),
                ScaledStorage(policy.moment2, t.numel)};
        if (policy.master != StorageFormat::fp32) {
            s.master = std::make_unique<ScaledStorage>(policy.master, t.numel);
            s.master->store(params + t.offset);
            s.master->load(params + t.offset);
        }
        total_ += t.numel;
        states_.push_back(std::move(s));
    }
}

double AdamW::step(float* params, float* grads, double lr) {
    if (!(lr >= 0)) throw Error("optimizer: learning rate must be non-negative");
    ++t_;
    double sq = 0;
    for (State& s : states_) {
        float* g = grads + s.tensor.offset;
        round_through(policy_.weight_grad, g, s.tensor.numel);
        for (int64_t i = 0; i < s.tensor.numel; ++i) sq += double(g[i]) * double(g[i]);
    }
    const double norm = std::sqrt(sq);
    const double clip =
        config_.grad_clip > 0 && norm > config_.grad_clip ? config_.grad_clip / norm : 1.0;
    const float b1 = float(config_.beta1), b2 = float(config_.beta2);
    const float bias1 = float(1.0 - std::pow(config_.beta1, double(t_)));
    const float bias2 = float(1.0 - std::pow(config_.beta2, double(t_)));
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
        const float decay = s.tensor.decay ? float(1.0 - lr * config_.weight_decay) : 1.0f;
        for (int64_t i = 0; i < n; ++i) {
            const float gi = float(double(g[i]) * clip);
            m[size_t(i)] = b1 * m[size_t(i)] + (1 - b1) * gi;
            v[size_t(i)] = b2 * v[size_t(i)] + (1 - b2) * gi * gi;
            const float m_hat = m[size_t(i)] / bias1, v_hat = v[size_t(i)] / bias2;
            w[i] *= decay;
            w[i] -= float(lr) * m_hat / (std::sqrt(v_hat) + float(config_.eps));
        }
        s.m.store(m.data());
        s.v.store(v.data());
        if (s.master) {
            s.master->store(w);
            s.master->load(w);
        }
    }
    last_ = {lr, config_.weight_decay, config_.beta1, config_.beta2, t_};
    return norm;
}

AdamW::Moments AdamW::export_state() const {
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
    for (State& s : states_) {
        s.m.store(state.m.data() + s.tensor.offset);
        s.v.store(state.v.data() + s.tensor.offset);
        if (s.master) s.master->store(params + s.tensor.offset);
    }
    t_ = state.step;
}

double AdamW::bytes_per_parameter() const {
    size_t bytes = 0;
    for (const State& s : states_)
        bytes += (s.master ? s.master->bytes() : size_t(s.tensor.numel) * 4) + s.m.bytes() +
                 s.v.bytes() +
                 size_t(s.tensor.numel) * size_t(storage_format_bytes(policy_.weight_grad));
    return total_ ? double(bytes) / double(total_) : 0.0;
}

} // namespace octet
