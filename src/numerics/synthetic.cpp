// Heavy-tailed synthetic activations (see synthetic.h).
#include "numerics/synthetic.h"

#include <algorithm>
#include <cmath>

#include "common/rng.h"

namespace octet {

static double student_t3(Rng& rng) {
    // t_ν = Z / sqrt(χ²_ν / ν), with χ²_3 as a sum of three squared normals.
    double chi2 = 0;
    for (int i = 0; i < 3; ++i) {
        const double z = rng.normal();
        chi2 += z * z;
    }
    return rng.normal() / std::sqrt(chi2 / 3.0);
}

std::vector<float> heavy_tailed_activations(int64_t tokens, int64_t channels, uint64_t seed) {
    Rng rng(seed);
    std::vector<double> channel_scale(static_cast<size_t>(channels));
    for (double& s : channel_scale) s = std::exp(0.5 * rng.normal());
    const int64_t outliers = std::max<int64_t>(2, channels / 100);
    for (int64_t i = 0; i < outliers && channels > 0; ++i)
        channel_scale[size_t(rng.next_u64() % uint64_t(channels))] *= 20.0 + 80.0 * rng.uniform();
    // Massive activations live in a few channels of a few "sink" tokens.
    const int64_t massive_channels[2] = {
        channels > 0 ? int64_t(rng.next_u64() % uint64_t(channels)) : 0,
        channels > 0 ? int64_t(rng.next_u64() % uint64_t(channels)) : 0};

    std::vector<float> x(size_t(tokens * channels));
    for (int64_t t = 0; t < tokens; ++t) {
        const double token_scale = std::exp(1.5 * rng.normal());
        const bool sink = t == 0 || rng.uniform() < 0.005;
        for (int64_t c = 0; c < channels; ++c) {
            double v = student_t3(rng) * channel_scale[size_t(c)] * token_scale;
            if (sink && (c == massive_channels[0] || c == massive_channels[1]))
                v = (rng.uniform() < 0.5 ? -1 : 1) * (1000.0 + 9000.0 * rng.uniform());
            x[size_t(t * channels + c)] = float(v);
        }
    }
    return x;
}

} // namespace octet
