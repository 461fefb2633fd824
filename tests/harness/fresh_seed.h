// Fresh random inputs for every run, reproducible on failure: the seed comes from
// OCTET_TEST_SEED when set, else from std::random_device, and every test that uses it prints it
// through a SCOPED_TRACE ("seed=…; rerun with OCTET_TEST_SEED=…").
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/rng.h"

namespace octet::testing {

inline uint64_t fresh_seed() {
    if (const char* s = std::getenv("OCTET_TEST_SEED")) return std::strtoull(s, nullptr, 10);
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
}

inline std::string seed_note(uint64_t seed) {
    return "seed=" + std::to_string(seed) + "; rerun with OCTET_TEST_SEED=" + std::to_string(seed);
}

// Normal values times per-row magnitudes spread over 2^±spread_log2 (so block scales differ).
inline std::vector<float> random_matrix(Rng& rng, int64_t rows, int64_t cols, double spread_log2) {
    std::vector<float> x(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const double row_scale = std::exp2(spread_log2 * (2 * rng.uniform() - 1));
        for (int64_t c = 0; c < cols; ++c)
            x[size_t(r * cols + c)] = float(rng.normal() * row_scale);
    }
    return x;
}

// random_matrix spread over 2^±8 with a NaN, an Inf and an all-zero row among the values: the
// inputs a quantizer must survive.
inline std::vector<float> awkward_matrix(Rng& rng, int64_t rows, int64_t cols) {
    std::vector<float> x = random_matrix(rng, rows, cols, 8.0);
    if (x.size() > 10) {
        x[3] = std::numeric_limits<float>::quiet_NaN();
        x[7] = -std::numeric_limits<float>::infinity();
    }
    if (rows > 2)
        for (int64_t c = 0; c < cols; ++c) x[size_t(cols + c)] = 0.0f;
    return x;
}

} // namespace octet::testing
