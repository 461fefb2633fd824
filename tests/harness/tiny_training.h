// A tiny, fixed training setup shared by the training tests and the CPU benchmark: a GPT-2 L2
// d64 h4 model on a synthetic token stream drawn from a sparse bigram chain (each of 64 tokens has
// 4 successors), whose entropy bounds the loss from below. Fixed seeds: every run sees the same
// batches and starts from the same weights.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "common/rng.h"
#include "cpu/cpu_ops.h"
#include "train/train_step.h"

namespace octet::testing {

struct BigramStream {
    static constexpr int64_t vocab = 64, successors = 4;
    std::vector<int32_t> tokens;
    double entropy = 0; // nats per token of the chain: the best achievable loss

    explicit BigramStream(int64_t n, uint64_t seed = 7) {
        Rng rng(seed);
        std::vector<int32_t> next(size_t(vocab * successors));
        for (auto& t : next) t = int32_t(rng.next_u64() % uint64_t(vocab));
        const double p[successors] = {0.55, 0.25, 0.15, 0.05};
        for (double q : p) entropy -= q * std::log(q);
        tokens.resize(size_t(n));
        int32_t t = 0;
        for (auto& out : tokens) {
            const double u = rng.uniform();
            int64_t k = 0;
            for (double acc = p[0]; u > acc && k < successors - 1; acc += p[++k]) {
            }
            out = t = next[size_t(t * successors + k)];
        }
    }
};

inline ModelConfig tiny_config() {
    ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.d_model = 64;
    c.vocab_size = BigramStream::vocab;
    c.seq_len = 32;
    return c;
}

// Trains the tiny model for `steps` steps of batch 8 under `policy`; returns every step's loss.
// LR: linear warm-up over 10% of the steps to `peak_lr`, cosine decay to 10% of it.
inline std::vector<float> train_tiny(const std::string& policy, int64_t steps,
                                     double peak_lr = 3e-3, uint64_t seed = 1) {
    const int64_t batch = 8, seq = 32;
    static const BigramStream stream(200000);
    CpuOps<float> ops;
    const PrecisionPolicy p = make_policy(policy);
    Gpt<float> model(tiny_config(), ops, p, seed);
    AdamW optimizer(ops, model.params().tensors(), model.params().values(), p, AdamWConfig{});
    TrainStep step(model, optimizer, ops, p, true);
    std::vector<float> losses;
    const int64_t warmup = std::max<int64_t>(1, steps / 10);
    for (int64_t s = 0; s < steps; ++s) {
        const int64_t at = (s * batch * seq) % int64_t(stream.tokens.size() - batch * seq - 1);
        const int32_t* x = stream.tokens.data() + at;
        const double lr = s < warmup
                              ? peak_lr * double(s + 1) / double(warmup)
                              : peak_lr * (0.1 + 0.45 * (1 + std::cos(M_PI * double(s - warmup) /
                                                                      double(steps - warmup))));
        losses.push_back(float(step.run({{x, x + 1}}, batch, seq, lr).loss));
    }
    return losses;
}

inline double mean_of_last(const std::vector<float>& v, size_t n) {
    double s = 0;
    for (size_t i = v.size() - n; i < v.size(); ++i) s += v[i];
    return s / double(n);
}

} // namespace octet::testing
