// Sampling (see sampler.h).
#include "train/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace octet {

void sample_tokens(Gpt<float>& model, std::vector<int32_t>& tokens, int64_t count,
                   double temperature, int64_t top_k, Rng& rng) {
    if (tokens.empty()) throw Error("sampling needs a prompt of at least one token");
    const int64_t v = model.config().vocab_size;
    std::vector<std::pair<double, int32_t>> ranked(static_cast<size_t>(v));
    for (int64_t i = 0; i < count; ++i) {
        const int64_t ctx = std::min<int64_t>(int64_t(tokens.size()), model.config().seq_len);
        model.forward(tokens.data() + tokens.size() - ctx, nullptr, 1, ctx);
        const std::vector<float> logits = model.logits_row(ctx - 1);
        for (int64_t j = 0; j < v; ++j)
            ranked[size_t(j)] = {double(logits[j]) / temperature, int32_t(j)};
        const int64_t k = std::min(top_k, v);
        std::partial_sort(
            ranked.begin(), ranked.begin() + k, ranked.end(), [](const auto& a, const auto& b) {
                return a.first > b.first || (a.first == b.first && a.second < b.second);
            });
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(ranked[size_t(j)].first - ranked[0].first);
        double u = rng.uniform() * sum;
        int32_t pick = ranked[size_t(k - 1)].second;
        for (int64_t j = 0; j < k; ++j) {
            u -= std::exp(ranked[size_t(j)].first - ranked[0].first);
            if (u <= 0) {
                pick = ranked[size_t(j)].second;
                break;
            }
        }
        tokens.push_back(pick);
    }
}

} // namespace octet
